using P2PReplay.Transport;

namespace P2PReplay.Tests.Transport;

public sealed class HandshakeTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 28, 12, 0, 0, TimeSpan.Zero);

    private static async Task<(HandshakeResult Initiator, HandshakeResult Responder)> RunAsync(PeerContext initiator, PeerContext responder, string? pin = null)
    {
        var (a, b) = DuplexEnd.CreatePair();
        Task<HandshakeResult> respond = Handshake.RespondAsync(b, responder, CancellationToken.None);
        Task<HandshakeResult> initiate = Handshake.InitiateAsync(a, initiator, "10.0.0.1:7400", pin, CancellationToken.None);
        return (await initiate, await respond);
    }

    [Fact]
    public async Task Handshake_completes_and_both_sides_know_each_other()
    {
        var time = new ManualTimeProvider(Start);
        PeerContext alice = TestNodes.Context(1, time: time);
        PeerContext bob = TestNodes.Context(2, time: time);
        var (i, r) = await RunAsync(alice, bob, pin: bob.Identity.NodeId);
        Assert.Equal(bob.Identity.NodeId, i.RemoteNodeId);
        Assert.Equal(alice.Identity.NodeId, r.RemoteNodeId);
        Assert.Equal(alice.Identity.NumericId, r.RemoteNumericId);
        Assert.Equal("10.0.0.1:7400", r.RemoteListenAddress);
        Assert.Equal(i.SendKey, r.ReceiveKey);
        Assert.Equal(i.ReceiveKey, r.SendKey);
        Assert.NotEqual(i.SendKey, i.ReceiveKey);
    }

    [Fact]
    public async Task Wrong_cluster_secret_is_refused_on_both_sides()
    {
        var logger = new CapturingLogger();
        PeerContext alice = TestNodes.Context(1, secret: ClusterSecret.Create());
        PeerContext bob = TestNodes.Context(2, logger: logger);
        var (a, b) = DuplexEnd.CreatePair();
        Task<HandshakeResult> respond = Handshake.RespondAsync(b, bob, CancellationToken.None);
        var initiatorError = await Assert.ThrowsAsync<HandshakeException>(() => Handshake.InitiateAsync(a, alice, "", null, CancellationToken.None));
        var responderError = await Assert.ThrowsAsync<HandshakeException>(() => respond);
        Assert.Equal(HandshakeFailure.WrongClusterSecret, responderError.Reason);
        Assert.Equal(HandshakeFailure.WrongClusterSecret, initiatorError.Reason);
        Assert.True(initiatorError.RefusedByPeer);
    }

    [Fact]
    public async Task Initiator_detects_a_responder_without_the_secret()
    {
        // A responder that skips the hello check (an impostor) still cannot produce the reply MAC.
        PeerContext alice = TestNodes.Context(1);
        PeerContext impostor = TestNodes.Context(2, secret: ClusterSecret.Create());
        var (a, b) = DuplexEnd.CreatePair();
        Task<HandshakeResult> initiate = Handshake.InitiateAsync(a, alice, "", null, CancellationToken.None);
        byte[] hello = await Handshake.ReadMessageAsync(b, CancellationToken.None);
        Assert.Equal(HandshakeMessages.HelloType, hello[0]);
        byte[] fakeReply = new byte[HandshakeMessages.ReplyLength];
        fakeReply[0] = HandshakeMessages.ReplyType;
        impostor.Random.Fill(fakeReply.AsSpan(1, 32));
        impostor.Identity.PublicKey.CopyTo(fakeReply, 33);
        await Handshake.WriteMessageAsync(b, fakeReply, CancellationToken.None);
        var error = await Assert.ThrowsAsync<HandshakeException>(() => initiate);
        Assert.Equal(HandshakeFailure.WrongClusterSecret, error.Reason);
        Assert.False(error.RefusedByPeer);
    }

    [Fact]
    public async Task Pinned_node_id_mismatch_is_refused()
    {
        var error = await Assert.ThrowsAsync<HandshakeException>(() => RunAsync(TestNodes.Context(1), TestNodes.Context(2), pin: "0000000000000000"));
        Assert.Equal(HandshakeFailure.UnexpectedPeer, error.Reason);
    }

    [Fact]
    public async Task Replayed_hello_is_refused_as_replayed()
    {
        PeerContext alice = TestNodes.Context(1);
        PeerContext bob = TestNodes.Context(2);
        var (a, b) = DuplexEnd.CreatePair();
        Task<HandshakeResult> respond = Handshake.RespondAsync(b, bob, CancellationToken.None);
        await Handshake.InitiateAsync(a, alice, "", null, CancellationToken.None);
        await respond;

        var (attacker, victim) = DuplexEnd.CreatePair();
        Task<HandshakeResult> second = Handshake.RespondAsync(victim, bob, CancellationToken.None);
        await attacker.WriteAsync(a.Written[0]);
        var error = await Assert.ThrowsAsync<HandshakeException>(() => second);
        Assert.Equal(HandshakeFailure.Replayed, error.Reason);
        Assert.Contains("replayed handshake", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Recorded_initiator_transcript_replayed_to_a_fresh_responder_cannot_complete()
    {
        PeerContext alice = TestNodes.Context(1);
        PeerContext bob = TestNodes.Context(2);
        var (a, b) = DuplexEnd.CreatePair();
        Task<HandshakeResult> respond = Handshake.RespondAsync(b, bob, CancellationToken.None);
        await Handshake.InitiateAsync(a, alice, "", null, CancellationToken.None);
        await respond;

        // Same identity and secret, empty replay cache (a restarted node): the hello passes, the finish cannot.
        PeerContext bobRestarted = new(bob.Identity, bob.Secret, random: new SeededRandom(99));
        var (attacker, victim) = DuplexEnd.CreatePair();
        Task<HandshakeResult> replayed = Handshake.RespondAsync(victim, bobRestarted, CancellationToken.None);
        foreach (byte[] chunk in a.Written) await attacker.WriteAsync(chunk);
        var error = await Assert.ThrowsAsync<HandshakeException>(() => replayed);
        Assert.Equal(HandshakeFailure.BadSignature, error.Reason);
    }

    [Theory]
    [InlineData(31)]
    [InlineData(-31)]
    [InlineData(3600)]
    public async Task Stale_hello_is_refused(int secondsOff)
    {
        PeerContext alice = TestNodes.Context(1, time: new ManualTimeProvider(Start.AddSeconds(secondsOff)));
        PeerContext bob = TestNodes.Context(2, time: new ManualTimeProvider(Start));
        var error = await Assert.ThrowsAsync<HandshakeException>(() => RunAsync(alice, bob));
        Assert.Equal(HandshakeFailure.Stale, error.Reason);
        Assert.True(error.RefusedByPeer);
    }

    [Fact]
    public async Task Hello_within_the_window_is_accepted()
    {
        PeerContext alice = TestNodes.Context(1, time: new ManualTimeProvider(Start.AddSeconds(29)));
        PeerContext bob = TestNodes.Context(2, time: new ManualTimeProvider(Start));
        await RunAsync(alice, bob);
    }

    [Fact]
    public async Task Silent_peer_times_out()
    {
        PeerContext bob = TestNodes.Context(2, options: new TransportOptions { HandshakeTimeout = TimeSpan.FromMilliseconds(200) });
        var (_, b) = DuplexEnd.CreatePair();
        var error = await Assert.ThrowsAsync<HandshakeException>(() => Handshake.RespondAsync(b, bob, CancellationToken.None));
        Assert.Equal(HandshakeFailure.Timeout, error.Reason);
    }

    [Fact]
    public async Task Other_version_is_refused_as_version_mismatch()
    {
        PeerContext bob = TestNodes.Context(2);
        var (a, b) = DuplexEnd.CreatePair();
        Task<HandshakeResult> respond = Handshake.RespondAsync(b, bob, CancellationToken.None);
        byte[] hello = HandshakeMessages.EncodeHelloUnmaced(0, new byte[16], new byte[32], new byte[32], "", version: 2);
        await Handshake.WriteMessageAsync(a, [.. hello, .. new byte[32]], CancellationToken.None);
        var error = await Assert.ThrowsAsync<HandshakeException>(() => respond);
        Assert.Equal(HandshakeFailure.VersionMismatch, error.Reason);
        byte[] refusal = await Handshake.ReadMessageAsync(a, CancellationToken.None);
        var peerError = Assert.Throws<HandshakeException>(() => HandshakeMessages.ParseReply(refusal));
        Assert.Equal(HandshakeFailure.VersionMismatch, peerError.Reason);
    }

    [Fact]
    public void Replay_cache_is_bounded()
    {
        var cache = new HandshakeReplayCache(100, TimeSpan.FromSeconds(30), new ManualTimeProvider(Start));
        for (int i = 0; i < 1000; i++) Assert.True(cache.TryAdd(BitConverter.GetBytes(i), new byte[16]));
        Assert.True(cache.Count <= 100);
        Assert.False(cache.TryAdd(BitConverter.GetBytes(999), new byte[16]));
    }

    [Fact]
    public void Fuzzed_handshake_messages_only_raise_handshake_exceptions()
    {
        var random = new Random(1234);
        byte[] hello = [.. HandshakeMessages.EncodeHelloUnmaced(1, new byte[16], new byte[32], new byte[32], "host:1"), .. new byte[32]];
        byte[] reply = new byte[HandshakeMessages.ReplyLength];
        reply[0] = HandshakeMessages.ReplyType;
        byte[] finish = new byte[HandshakeMessages.FinishLength];
        finish[0] = HandshakeMessages.FinishType;
        byte[][] seeds = [hello, reply, finish, HandshakeMessages.EncodeRefusal(HandshakeFailure.Stale)];
        for (int i = 0; i < 20000; i++)
        {
            byte[] input = Mutate(seeds[random.Next(seeds.Length)], random);
            foreach (Action parse in new Action[] { () => HandshakeMessages.ParseHello(input), () => HandshakeMessages.ParseReply(input), () => HandshakeMessages.ParseFinish(input) })
            {
                try
                {
                    parse();
                }
                catch (HandshakeException)
                {
                }
            }
        }
    }

    internal static byte[] Mutate(byte[] seed, Random random)
    {
        var bytes = new List<byte>(seed);
        int edits = random.Next(1, 4);
        for (int e = 0; e < edits; e++)
        {
            switch (random.Next(4))
            {
                case 0 when bytes.Count > 0:
                    bytes[random.Next(bytes.Count)] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when bytes.Count > 0:
                    bytes.RemoveRange(random.Next(bytes.Count), 1);
                    break;
                case 2:
                    bytes.Insert(random.Next(bytes.Count + 1), (byte)random.Next(256));
                    break;
                default:
                    if (bytes.Count > 0)
                    {
                        int keep = random.Next(bytes.Count);
                        bytes.RemoveRange(keep, bytes.Count - keep);
                    }

                    break;
            }
        }

        return [.. bytes];
    }
}
