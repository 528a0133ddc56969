using P2PReplay.Transport;

namespace P2PReplay.Tests.Transport;

/// <summary>
/// Mutates each handshake message of a recorded, deterministic handshake and feeds it to the real protocol code:
/// every mutation must end in a HandshakeException (never another exception, a hang, or success).
/// </summary>
public sealed class HandshakeFuzzTests
{
    private const int Iterations = 400;
    private static readonly DateTimeOffset Start = new(2026, 11, 28, 12, 0, 0, TimeSpan.Zero);

    // Same seeds give the same identities, ephemerals and nonces, so recorded messages fit every fresh run.
    private static PeerContext Initiator() => TestNodes.Context(1, time: new ManualTimeProvider(Start));

    private static PeerContext Responder() => TestNodes.Context(2, time: new ManualTimeProvider(Start));

    private static async Task<(byte[] Hello, byte[] Reply, byte[] Finish)> RecordAsync()
    {
        var (a, b) = DuplexEnd.CreatePair();
        Task<HandshakeResult> respond = Handshake.RespondAsync(b, Responder(), CancellationToken.None);
        await Handshake.InitiateAsync(a, Initiator(), "10.1.1.1:7400", null, CancellationToken.None);
        await respond;
        return (a.Written[0][2..], b.Written[0][2..], a.Written[1][2..]);
    }

    [Fact]
    public async Task Recorded_handshake_is_deterministic()
    {
        var first = await RecordAsync();
        var second = await RecordAsync();
        Assert.Equal(first.Hello, second.Hello);
        Assert.Equal(first.Reply, second.Reply);
    }

    [Fact]
    public async Task Mutated_hello_is_refused()
    {
        var recorded = await RecordAsync();
        var random = new Random(11);
        var reasons = new HashSet<HandshakeFailure>();
        for (int i = 0; i < Iterations; i++)
        {
            byte[] hello = HandshakeTests.Mutate(recorded.Hello, random);
            if (i % 2 == 0 && hello.Length > 32)
            {
                // Re-MAC so the mutation reaches the checks behind the MAC (timestamp, replay, keys).
                hello = [.. hello[..^32], .. Handshake.HelloMac(TestNodes.Secret, hello[..^32])];
            }

            reasons.Add(await RespondToAsync([hello]));
        }

        Assert.Contains(HandshakeFailure.Malformed, reasons);
        Assert.Contains(HandshakeFailure.WrongClusterSecret, reasons);
    }

    [Fact]
    public async Task Mutated_finish_is_refused()
    {
        var recorded = await RecordAsync();
        var random = new Random(12);
        for (int i = 0; i < Iterations; i++) await RespondToAsync([recorded.Hello, HandshakeTests.Mutate(recorded.Finish, random)]);
    }

    [Fact]
    public async Task Mutated_reply_is_refused()
    {
        var recorded = await RecordAsync();
        var random = new Random(13);
        for (int i = 0; i < Iterations; i++)
        {
            var (a, b) = DuplexEnd.CreatePair();
            Task<HandshakeResult> initiate = Handshake.InitiateAsync(a, Initiator(), "10.1.1.1:7400", null, CancellationToken.None);
            await WriteFramedAsync(b, HandshakeTests.Mutate(recorded.Reply, random));
            b.Dispose();
            await Assert.ThrowsAsync<HandshakeException>(() => initiate);
        }
    }

    private static async Task<HandshakeFailure> RespondToAsync(byte[][] messages)
    {
        var (a, b) = DuplexEnd.CreatePair();
        Task<HandshakeResult> respond = Handshake.RespondAsync(b, Responder(), CancellationToken.None);
        foreach (byte[] message in messages) await WriteFramedAsync(a, message);
        a.Dispose();
        return (await Assert.ThrowsAsync<HandshakeException>(() => respond)).Reason;
    }

    private static async Task WriteFramedAsync(Stream stream, byte[] body)
    {
        // Raw length prefix, so lengths the real writer never produces (0, > 1024) are covered too.
        await stream.WriteAsync(new[] { (byte)(body.Length >> 8), (byte)body.Length });
        await stream.WriteAsync(body);
    }
}
