using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using P2PReplay.Transport;

namespace P2PReplay.Tests.Transport;

public sealed class PeerNetworkTests
{
    private static readonly IPEndPoint AnyLoopbackPort = new(IPAddress.Loopback, 0);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(5);

    private static TransportOptions FastOptions => new() { HandshakeTimeout = TimeSpan.FromMilliseconds(500), ConnectTimeout = TimeSpan.FromSeconds(2) };

    [Fact]
    public async Task Handshake_and_frames_over_loopback_tcp()
    {
        PeerContext server = TestNodes.Context(1);
        PeerContext client = TestNodes.Context(2);
        await using var listener = new PeerListener(server, AnyLoopbackPort);
        listener.Start();
        string address = PeerAddress.Format(listener.LocalEndPoint);
        using SecureConnection outbound = await PeerConnector.ConnectAsync(client, address, "127.0.0.1:9999", expectedRemoteNodeId: server.Identity.NodeId);
        using SecureConnection inbound = await listener.Accepted.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal(client.Identity.NodeId, inbound.RemoteNodeId);
        Assert.Equal("127.0.0.1:9999", inbound.Handshake.RemoteListenAddress);
        Assert.Equal(server.Identity.NodeId, outbound.RemoteNodeId);
        Assert.NotNull(outbound.RemoteEndPoint);

        await outbound.SendAsync(ChannelKind.Gossip, "ping"u8.ToArray(), compress: false, CancellationToken.None);
        TransportFrame? frame = await inbound.ReceiveAsync(CancellationToken.None).WaitAsync(Patience);
        Assert.Equal("ping"u8.ToArray(), frame!.Payload.ToArray());
        await inbound.SendAsync(ChannelKind.Raft, new byte[100_000], compress: true, CancellationToken.None);
        frame = await outbound.ReceiveAsync(CancellationToken.None).WaitAsync(Patience);
        Assert.Equal(100_000, frame!.Payload.Length);

        outbound.Dispose();
        Assert.Null(await inbound.ReceiveAsync(CancellationToken.None).WaitAsync(Patience));
    }

    [Fact]
    public async Task Wrong_secret_over_tcp_is_refused_and_logged_on_both_sides()
    {
        var serverLog = new CapturingLogger();
        var clientLog = new CapturingLogger();
        PeerContext server = TestNodes.Context(1, logger: serverLog);
        PeerContext client = TestNodes.Context(2, secret: ClusterSecret.Create(), logger: clientLog);
        await using var listener = new PeerListener(server, AnyLoopbackPort);
        listener.Start();
        var error = await Assert.ThrowsAsync<HandshakeException>(() => PeerConnector.ConnectAsync(client, PeerAddress.Format(listener.LocalEndPoint)));
        Assert.Equal(HandshakeFailure.WrongClusterSecret, error.Reason);
        await WaitUntil(() => server.Counters.HandshakesRefused(HandshakeFailure.WrongClusterSecret) == 1);
        Assert.True(serverLog.Contains("refused: WrongClusterSecret"));
        Assert.True(clientLog.Contains("refused: WrongClusterSecret"));
        Assert.Equal(1, client.Counters.HandshakesRefused(HandshakeFailure.WrongClusterSecret));
    }

    [Fact]
    public async Task Garbage_and_half_open_connections_are_refused_and_the_listener_keeps_serving()
    {
        var log = new CapturingLogger();
        PeerContext server = TestNodes.Context(1, logger: log, options: FastOptions);
        await using var listener = new PeerListener(server, AnyLoopbackPort);
        listener.Start();

        using var garbage = new TcpClient();
        await garbage.ConnectAsync(listener.LocalEndPoint);
        await garbage.GetStream().WriteAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        using var halfOpen = new TcpClient();
        await halfOpen.ConnectAsync(listener.LocalEndPoint);
        using var closesEarly = new TcpClient();
        await closesEarly.ConnectAsync(listener.LocalEndPoint);
        await closesEarly.GetStream().WriteAsync(new byte[] { 0, 200, 1, 1 });
        closesEarly.Close();

        await WaitUntil(() => listener.RefusedConnections >= 3);
        Assert.Equal(1, server.Counters.HandshakesRefused(HandshakeFailure.Malformed));
        Assert.Equal(1, server.Counters.HandshakesRefused(HandshakeFailure.Timeout));
        Assert.Equal(1, server.Counters.HandshakesRefused(HandshakeFailure.ConnectionClosed));
        Assert.True(log.Contains("refused: Malformed"));
        Assert.True(log.Contains("refused: Timeout"));

        using SecureConnection legit = await PeerConnector.ConnectAsync(TestNodes.Context(2), PeerAddress.Format(listener.LocalEndPoint));
        using SecureConnection accepted = await listener.Accepted.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal(legit.Handshake.RemoteNodeId, server.Identity.NodeId);
    }

    [Fact]
    public async Task Peer_networks_exchange_messages_and_reply_over_the_inbound_connection()
    {
        var toA = Channel.CreateUnbounded<PeerMessage>();
        var toB = Channel.CreateUnbounded<PeerMessage>();
        PeerContext contextA = TestNodes.Context(1);
        PeerContext contextB = TestNodes.Context(2);
        await using var a = new PeerNetwork(contextA, (m, _) => toA.Writer.WriteAsync(m));
        await using var b = new PeerNetwork(contextB, (m, _) => toB.Writer.WriteAsync(m));
        a.Start(AnyLoopbackPort);
        b.Start(AnyLoopbackPort);

        Assert.True(await a.SendAsync(b.AdvertisedAddress, ChannelKind.Gossip, "hello b"u8.ToArray()));
        PeerMessage atB = await toB.Reader.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal(contextA.Identity.NodeId, atB.RemoteNodeId);
        Assert.Equal(a.AdvertisedAddress, atB.RemoteAddress);

        // B replies to the advertised address; it reuses the connection A opened (no second handshake).
        Assert.True(await b.SendAsync(atB.RemoteAddress, ChannelKind.Raft, "hello a"u8.ToArray(), compress: true));
        PeerMessage atA = await toA.Reader.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal("hello a"u8.ToArray(), atA.Payload.ToArray());
        Assert.Equal(ChannelKind.Raft, atA.Kind);
        Assert.Equal(1, contextA.Counters.HandshakesCompleted);
        Assert.Equal(1, contextB.Counters.HandshakesCompleted);

        PeerNetworkStatus status = a.GetStatus();
        Assert.Equal(1, status.FramesOut);
        Assert.Equal(1, status.FramesIn);
        Assert.Contains(status.Peers, p => p.Connected && p.NodeId == contextB.Identity.NodeId);
    }

    [Fact]
    public async Task Tampered_frame_over_tcp_closes_only_that_connection_with_a_log_line_naming_the_endpoint()
    {
        var log = new CapturingLogger();
        PeerContext server = TestNodes.Context(1, logger: log);
        await using var listener = new PeerListener(server, AnyLoopbackPort);
        listener.Start();

        using var raw = new TcpClient();
        await raw.ConnectAsync(listener.LocalEndPoint);
        NetworkStream stream = raw.GetStream();
        await Handshake.InitiateAsync(stream, TestNodes.Context(2), "", null, CancellationToken.None);
        using SecureConnection victim = await listener.Accepted.ReadAsync().AsTask().WaitAsync(Patience);
        await stream.WriteAsync(new byte[] { 0, 0, 0, 20 }.Concat(new byte[20]).ToArray());
        var error = await Assert.ThrowsAsync<FrameException>(() => victim.ReceiveAsync(CancellationToken.None).WaitAsync(Patience));
        Assert.Equal(FrameFailure.AuthenticationFailed, error.Reason);
        string local = ((IPEndPoint)raw.Client.LocalEndPoint!).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Single(log.Lines, l => l.Message.Contains("closed: AuthenticationFailed", StringComparison.Ordinal) && l.Message.Contains(local, StringComparison.Ordinal));
        Assert.Equal(0, await stream.ReadAsync(new byte[1]).AsTask().WaitAsync(Patience)); // server closed it

        using SecureConnection other = await PeerConnector.ConnectAsync(TestNodes.Context(3), PeerAddress.Format(listener.LocalEndPoint));
        Assert.False(other.IsClosed);
    }

    [Fact]
    public async Task Connections_beyond_the_pending_handshake_limit_are_closed_at_once()
    {
        var log = new CapturingLogger();
        PeerContext server = TestNodes.Context(1, logger: log, options: new TransportOptions { MaxPendingHandshakes = 2, HandshakeTimeout = TimeSpan.FromSeconds(2) });
        await using var listener = new PeerListener(server, AnyLoopbackPort);
        listener.Start();
        var idle = new List<TcpClient>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var client = new TcpClient();
                idle.Add(client);
                await client.ConnectAsync(listener.LocalEndPoint);
            }

            await WaitUntil(() => log.Contains("handshakes already pending"));
            Assert.Equal(0, await idle[2].GetStream().ReadAsync(new byte[1]).AsTask().WaitAsync(Patience));
        }
        finally
        {
            idle.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task Failing_handler_is_logged_and_the_connection_keeps_delivering()
    {
        var log = new CapturingLogger();
        var received = Channel.CreateUnbounded<PeerMessage>();
        await using var a = new PeerNetwork(TestNodes.Context(1), (_, _) => ValueTask.CompletedTask);
        await using var b = new PeerNetwork(TestNodes.Context(2, logger: log), (m, _) =>
            m.Payload.Span[0] == 0 ? throw new InvalidOperationException("handler bug") : received.Writer.WriteAsync(m));
        b.Start(AnyLoopbackPort);
        Assert.True(await a.SendAsync(b.AdvertisedAddress, ChannelKind.Control, new byte[] { 0 }));
        Assert.True(await a.SendAsync(b.AdvertisedAddress, ChannelKind.Control, new byte[] { 1 }));
        Assert.Equal(1, (await received.Reader.ReadAsync().AsTask().WaitAsync(Patience)).Payload.Span[0]);
        Assert.Contains(log.Lines, l => l.Message.StartsWith("Handler for a Control frame", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Concurrent_first_sends_share_one_connection()
    {
        var received = Channel.CreateUnbounded<PeerMessage>();
        PeerContext contextA = TestNodes.Context(1);
        await using var a = new PeerNetwork(contextA, (_, _) => ValueTask.CompletedTask);
        await using var b = new PeerNetwork(TestNodes.Context(2), (m, _) => received.Writer.WriteAsync(m));
        b.Start(AnyLoopbackPort);
        bool[] sent = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => a.SendAsync(b.AdvertisedAddress, ChannelKind.Gossip, new[] { (byte)i }).AsTask()));
        Assert.All(sent, Assert.True);
        for (int i = 0; i < 20; i++) await received.Reader.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.Equal(1, contextA.Counters.HandshakesCompleted);
    }

    [Fact]
    public async Task Unreachable_peer_drops_frames_with_backoff_and_reconnects_when_it_returns()
    {
        var log = new CapturingLogger();
        var time = new ManualTimeProvider(DateTimeOffset.UtcNow);
        PeerContext contextA = TestNodes.Context(1, time: time, logger: log, options: FastOptions);
        await using var a = new PeerNetwork(contextA, (_, _) => ValueTask.CompletedTask, jitter: new Random(1));

        // Reserve a port, then close it so nothing listens there.
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        string address = $"127.0.0.1:{port}";

        Assert.False(await a.SendAsync(address, ChannelKind.Gossip, new byte[1]));
        Assert.True(log.Contains($"Peer {address} unreachable"));
        Assert.False(await a.SendAsync(address, ChannelKind.Gossip, new byte[1])); // backing off: no connect attempt
        Assert.Equal(2, a.GetStatus().FramesDropped);
        Assert.NotNull(a.GetStatus().Peers.Single().RetryAfter);

        var received = Channel.CreateUnbounded<PeerMessage>();
        await using var b = new PeerNetwork(TestNodes.Context(2), (m, _) => received.Writer.WriteAsync(m));
        b.Start(new IPEndPoint(IPAddress.Loopback, port));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await a.SendAsync(address, ChannelKind.Gossip, new byte[] { 42 }));
        Assert.Equal(42, (await received.Reader.ReadAsync().AsTask().WaitAsync(Patience)).Payload.Span[0]);
    }

    [Fact]
    public async Task Send_after_the_peer_restarted_reconnects_once()
    {
        var received = Channel.CreateUnbounded<PeerMessage>();
        await using var a = new PeerNetwork(TestNodes.Context(1), (_, _) => ValueTask.CompletedTask);
        var b = new PeerNetwork(TestNodes.Context(2), (m, _) => received.Writer.WriteAsync(m));
        b.Start(AnyLoopbackPort);
        IPEndPoint endPoint = b.ListenEndPoint!;
        Assert.True(await a.SendAsync(b.AdvertisedAddress, ChannelKind.Control, new byte[] { 1 }));
        await received.Reader.ReadAsync().AsTask().WaitAsync(Patience);
        await b.DisposeAsync();

        await using var b2 = new PeerNetwork(TestNodes.Context(2), (m, _) => received.Writer.WriteAsync(m));
        b2.Start(endPoint);
        await WaitUntil(() => a.GetStatus().Peers.All(p => !p.Connected));
        Assert.True(await a.SendAsync(PeerAddress.Format(endPoint), ChannelKind.Control, new byte[] { 2 }));
        Assert.Equal(2, (await received.Reader.ReadAsync().AsTask().WaitAsync(Patience)).Payload.Span[0]);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in time");
            await Task.Delay(20);
        }
    }
}
