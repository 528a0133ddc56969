using System.Net.Sockets;
using P2PReplay.Control;
using P2PReplay.Tests.Support;
using P2PReplay.Transport;

namespace P2PReplay.Tests.Daemon;

/// <summary>
/// Attacks on a running daemon's peer port and control socket, from this test process acting as a peer:
/// each is refused with a log line naming the reason, and the daemon keeps serving its cluster.
/// </summary>
[Collection("daemons")]
public sealed class PeerSecurityTests
{
    /// <summary>Records what is written before the first read (the initiator's hello) and can corrupt a write.</summary>
    private sealed class TapStream(Stream inner) : Stream
    {
        private bool readStarted;
        public MemoryStream FirstFlight { get; } = new();
        public bool CorruptNextWrite { get; set; }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            byte[] bytes = buffer.ToArray();
            if (!readStarted) FirstFlight.Write(bytes);
            if (CorruptNextWrite && bytes.Length > 8)
            {
                CorruptNextWrite = false;
                bytes[bytes.Length / 2] ^= 0x20;
            }
            await inner.WriteAsync(bytes, cancellationToken);
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            readStarted = true;
            return inner.ReadAsync(buffer, cancellationToken);
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }

    private static async Task<List<DaemonProcess>> TwoNodeClusterAsync() => await ClusterProcessTests.FormClusterAsync(2);

    private static async Task<(TapStream Tap, HandshakeResult Result, PeerContext Context)> LegitimateHandshakeAsync(DaemonProcess daemon)
    {
        var secret = ClusterSecret.Load(daemon.DataDir) ?? throw new InvalidOperationException("the daemon has no cluster secret");
        var context = new PeerContext(NodeIdentity.Create(), secret);
        var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", daemon.Port);
        var tap = new TapStream(client.GetStream());
        var result = await Handshake.InitiateAsync(tap, context, "127.0.0.1:9", null, CancellationToken.None);
        return (tap, result, context);
    }

    private static async Task AssertStillServingAsync(IReadOnlyList<DaemonProcess> daemons)
    {
        foreach (var daemon in daemons)
        {
            Assert.False(daemon.HasExited, "the daemon died");
            await daemon.WaitForAsync(s => s.Leader is not null && s.Members.Count(m => m.Status == "alive") == daemons.Count,
                TimeSpan.FromSeconds(10), "the cluster still healthy after the attack");
        }
    }

    [Fact]
    public async Task A_peer_without_the_cluster_secret_is_refused()
    {
        var daemons = await TwoNodeClusterAsync();
        try
        {
            var outsider = new PeerContext(NodeIdentity.Create(), ClusterSecret.Create());
            await Assert.ThrowsAnyAsync<Exception>(() => PeerConnector.ConnectAsync(outsider, daemons[0].Address));
            Assert.True(await WaitForLogAsync(daemons[0], "refused: WrongClusterSecret"), daemons[0].Log);

            // A whole daemon of another cluster pointed at this one is refused the same way and stays out.
            await using var stranger = await DaemonProcess.StartAsync();
            using (var client = stranger.Client())
            {
                string token = new JoinToken(ClusterSecret.Create(), [daemons[0].Address]).Encode();
                await client.PostAsync("/v1/cluster/join", new TokenBody(token), ControlJsonContext.Default.TokenBody, ControlJsonContext.Default.StatusBody);
            }
            await Task.Delay(1500);
            string strangerId = (await stranger.StatusAsync()).NodeId;
            Assert.DoesNotContain((await daemons[0].StatusAsync()).Members, m => m.Id == strangerId);
            Assert.Single((await stranger.StatusAsync()).Members);
            await AssertStillServingAsync(daemons);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_replayed_handshake_is_refused()
    {
        var daemons = await TwoNodeClusterAsync();
        try
        {
            var (tap, _, _) = await LegitimateHandshakeAsync(daemons[0]);
            byte[] hello = tap.FirstFlight.ToArray();
            Assert.NotEmpty(hello);
            tap.Dispose();

            using var replay = new TcpClient();
            await replay.ConnectAsync("127.0.0.1", daemons[0].Port);
            await replay.GetStream().WriteAsync(hello);
            Assert.True(await WaitForLogAsync(daemons[0], "refused: Replayed"), daemons[0].Log);
            await AssertStillServingAsync(daemons);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_tampered_frame_closes_that_connection_only()
    {
        var daemons = await TwoNodeClusterAsync();
        try
        {
            var (tap, result, context) = await LegitimateHandshakeAsync(daemons[0]);
            await using var connection = new SecureConnection(tap, result, context, null);
            await connection.SendAsync(ChannelKind.Gossip, new byte[64], compress: false, CancellationToken.None);
            tap.CorruptNextWrite = true;
            await connection.SendAsync(ChannelKind.Gossip, new byte[64], compress: false, CancellationToken.None);
            Assert.True(await WaitForLogAsync(daemons[0], "closed: AuthenticationFailed"), daemons[0].Log);
            await AssertStillServingAsync(daemons);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    [Fact]
    public async Task Garbage_on_the_peer_port_and_the_control_socket_is_refused()
    {
        var daemons = await TwoNodeClusterAsync();
        try
        {
            var random = new Random(99);
            for (int i = 0; i < 5; i++)
            {
                using var garbage = new TcpClient();
                await garbage.ConnectAsync("127.0.0.1", daemons[0].Port);
                byte[] bytes = new byte[random.Next(1, 5000)];
                random.NextBytes(bytes);
                await garbage.GetStream().WriteAsync(bytes);
                garbage.Client.Shutdown(SocketShutdown.Send);
            }
            Assert.True(await WaitForLogAsync(daemons[0], "Peer handshake with"), daemons[0].Log);

            using (var control = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                await control.ConnectAsync(new UnixDomainSocketEndPoint(daemons[0].Socket));
                byte[] bytes = new byte[2000];
                random.NextBytes(bytes);
                "\r\n\r\n"u8.CopyTo(bytes.AsSpan(500));
                await control.SendAsync(bytes, SocketFlags.None);
                control.Shutdown(SocketShutdown.Send);
                byte[] answer = new byte[4096];
                int read = await control.ReceiveAsync(answer, SocketFlags.None);
                Assert.StartsWith("HTTP/1.1 400", System.Text.Encoding.ASCII.GetString(answer, 0, read), StringComparison.Ordinal);
            }
            Assert.True(await WaitForLogAsync(daemons[0], "refused a malformed request"), daemons[0].Log);
            await AssertStillServingAsync(daemons);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    private static async Task<bool> WaitForLogAsync(DaemonProcess daemon, string text)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (daemon.Log.Contains(text, StringComparison.Ordinal)) return true;
            await Task.Delay(20);
        }
        return false;
    }
}
