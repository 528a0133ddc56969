using System.Buffers.Binary;
using P2PReplay.Transport;

namespace P2PReplay.Tests.Transport;

public sealed class FrameTests
{
    private static readonly byte[] KeyAtoB = Enumerable.Repeat((byte)7, 32).ToArray();
    private static readonly byte[] KeyBtoA = Enumerable.Repeat((byte)9, 32).ToArray();

    private static HandshakeResult Session(bool sender) =>
        new(new byte[32], "", sender ? KeyAtoB : KeyBtoA, sender ? KeyBtoA : KeyAtoB, isInitiator: sender);

    /// <summary>Frames written by a sender, as separate wire frames.</summary>
    private static async Task<List<byte[]>> SendFramesAsync(PeerContext context, int count, bool compress = false, int payloadSize = 100)
    {
        var sink = new MemoryStream();
        using var sender = new SecureConnection(sink, Session(sender: true), context, null);
        for (int i = 0; i < count; i++)
        {
            byte[] payload = Enumerable.Range(0, payloadSize).Select(b => (byte)(b % 7 + i)).ToArray();
            await sender.SendAsync(ChannelKind.Raft, payload, compress, CancellationToken.None);
        }

        byte[] all = sink.ToArray();
        var frames = new List<byte[]>();
        for (int offset = 0; offset < all.Length;)
        {
            int length = 4 + (int)BinaryPrimitives.ReadUInt32BigEndian(all.AsSpan(offset));
            frames.Add(all[offset..(offset + length)]);
            offset += length;
        }

        return frames;
    }

    private static SecureConnection Receiver(IEnumerable<byte[]> wire, PeerContext context) =>
        new(new MemoryStream([.. wire.SelectMany(f => f)]), Session(sender: false), context, null);

    private static async Task<List<TransportFrame>> ReceiveAllAsync(SecureConnection receiver)
    {
        var frames = new List<TransportFrame>();
        while (await receiver.ReceiveAsync(CancellationToken.None) is { } frame) frames.Add(frame);
        return frames;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Frames_round_trip_in_order(bool compress)
    {
        PeerContext context = TestNodes.Context(1);
        List<byte[]> wire = await SendFramesAsync(context, 5, compress, payloadSize: 10000);
        if (compress) Assert.True(wire[0].Length < 5000);
        using SecureConnection receiver = Receiver(wire, context);
        List<TransportFrame> frames = await ReceiveAllAsync(receiver);
        Assert.Equal(5, frames.Count);
        Assert.All(frames, f => Assert.Equal(ChannelKind.Raft, f.Kind));
        Assert.Equal(Enumerable.Range(0, 10000).Select(b => (byte)(b % 7 + 3)), frames[3].Payload.ToArray());
        Assert.Equal(5, context.Counters.FramesIn);
    }

    public static TheoryData<string> Manipulations => ["drop", "duplicate", "reorder", "replay-first"];

    [Theory]
    [MemberData(nameof(Manipulations))]
    public async Task Dropped_duplicated_reordered_or_replayed_frames_close_the_connection(string manipulation)
    {
        var logger = new CapturingLogger();
        PeerContext context = TestNodes.Context(1, logger: logger);
        List<byte[]> wire = await SendFramesAsync(context, 3);
        List<byte[]> delivered = manipulation switch
        {
            "drop" => [wire[0], wire[2]],
            "duplicate" => [wire[0], wire[1], wire[1], wire[2]],
            "reorder" => [wire[0], wire[2], wire[1]],
            _ => [wire[0], wire[1], wire[2], wire[0]],
        };
        using SecureConnection receiver = Receiver(delivered, context);
        var error = await Assert.ThrowsAsync<FrameException>(() => ReceiveAllAsync(receiver));
        Assert.Equal(FrameFailure.AuthenticationFailed, error.Reason);
        Assert.True(receiver.IsClosed);
        Assert.Contains(logger.Lines, l => l.Message.Contains("closed: AuthenticationFailed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Flipping_any_byte_of_a_frame_closes_the_connection()
    {
        PeerContext context = TestNodes.Context(1);
        byte[] frame = (await SendFramesAsync(context, 1, payloadSize: 40))[0];
        for (int i = 0; i < frame.Length; i++)
        {
            byte[] tampered = (byte[])frame.Clone();
            tampered[i] ^= 0x20;
            using SecureConnection receiver = Receiver([tampered], context);
            var error = await Assert.ThrowsAsync<FrameException>(() => receiver.ReceiveAsync(CancellationToken.None));
            Assert.True(error.Reason is FrameFailure.AuthenticationFailed or FrameFailure.Oversized or FrameFailure.Truncated or FrameFailure.Malformed, $"byte {i}: {error.Reason}");
        }
    }

    [Fact]
    public async Task Oversized_length_header_is_refused_before_reading_the_body()
    {
        var logger = new CapturingLogger();
        PeerContext context = TestNodes.Context(1, logger: logger, options: new TransportOptions { MaxFrameSize = 1024 });
        long before = GC.GetAllocatedBytesForCurrentThread();
        using SecureConnection receiver = Receiver([[0x7F, 0xFF, 0xFF, 0xFF]], context);
        var error = await Assert.ThrowsAsync<FrameException>(() => receiver.ReceiveAsync(CancellationToken.None));
        Assert.Equal(FrameFailure.Oversized, error.Reason);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1024 * 1024);
        Assert.True(logger.Contains("closed: Oversized"));
    }

    [Fact]
    public async Task Too_large_payload_cannot_be_sent()
    {
        PeerContext context = TestNodes.Context(1, options: new TransportOptions { MaxFrameSize = 1024 });
        using var sender = new SecureConnection(new MemoryStream(), Session(true), context, null);
        await Assert.ThrowsAsync<ArgumentException>(() => sender.SendAsync(ChannelKind.Gossip, new byte[2000], false, CancellationToken.None));
    }

    [Fact]
    public async Task Decompression_bomb_is_refused()
    {
        var options = new TransportOptions { MaxDecompressedSize = 1024 * 1024 };
        PeerContext sendContext = TestNodes.Context(1);
        var sink = new MemoryStream();
        using (var sender = new SecureConnection(sink, Session(true), sendContext, null))
        {
            await sender.SendAsync(ChannelKind.VmLog, new byte[64 * 1024 * 1024 / 4], compress: true, CancellationToken.None);
        }

        Assert.True(sink.ToArray().Length < 64 * 1024);
        var logger = new CapturingLogger();
        using SecureConnection receiver = Receiver([sink.ToArray()], TestNodes.Context(1, logger: logger, options: options));
        var error = await Assert.ThrowsAsync<FrameException>(() => receiver.ReceiveAsync(CancellationToken.None));
        Assert.Equal(FrameFailure.DecompressionLimit, error.Reason);
        Assert.True(logger.Contains("closed: DecompressionLimit"));
    }

    [Fact]
    public async Task Unknown_flags_are_refused()
    {
        // Seal with a codec, then re-seal a plaintext carrying an unknown flag bit via the same key schedule.
        using var codec = new FrameCodec(KeyAtoB, 4096, 4096);
        byte[] wire = codec.Seal(ChannelKind.Gossip, [1, 2, 3], compress: false);
        using var opener = new FrameCodec(KeyAtoB, 4096, 4096);
        var plain = opener.Open(wire.AsSpan(0, 4), wire.AsSpan(4));
        Assert.Equal([1, 2, 3], plain.Payload.ToArray());

        using var rogue = new RogueSealer(KeyAtoB);
        byte[] flagged = rogue.Seal([(byte)ChannelKind.Gossip, 0x80, 1]);
        using SecureConnection receiver = Receiver([flagged], TestNodes.Context(1));
        var error = await Assert.ThrowsAsync<FrameException>(() => receiver.ReceiveAsync(CancellationToken.None));
        Assert.Equal(FrameFailure.UnknownFlags, error.Reason);
    }

    [Fact]
    public async Task Truncated_stream_and_stalled_body_close_the_connection()
    {
        PeerContext context = TestNodes.Context(1);
        byte[] frame = (await SendFramesAsync(context, 1))[0];
        using (SecureConnection receiver = Receiver([frame[..10]], context))
        {
            Assert.Equal(FrameFailure.Truncated, (await Assert.ThrowsAsync<FrameException>(() => receiver.ReceiveAsync(CancellationToken.None))).Reason);
        }

        var (a, b) = DuplexEnd.CreatePair();
        PeerContext impatient = TestNodes.Context(1, options: new TransportOptions { FrameBodyTimeout = TimeSpan.FromMilliseconds(100) });
        using var stalled = new SecureConnection(b, Session(false), impatient, null);
        await a.WriteAsync(frame.AsMemory(0, 10));
        Assert.Equal(FrameFailure.Timeout, (await Assert.ThrowsAsync<FrameException>(() => stalled.ReceiveAsync(CancellationToken.None))).Reason);
    }

    [Fact]
    public async Task Concurrent_senders_produce_a_valid_sequence()
    {
        PeerContext context = TestNodes.Context(1);
        var (a, b) = DuplexEnd.CreatePair();
        using var sender = new SecureConnection(a, Session(true), context, null);
        using var receiver = new SecureConnection(b, Session(false), context, null);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(async () =>
        {
            for (int i = 0; i < 50; i++) await sender.SendAsync(ChannelKind.Gossip, new byte[t * 10 + 1], i % 2 == 0, CancellationToken.None);
        })));
        for (int i = 0; i < 400; i++) Assert.NotNull(await receiver.ReceiveAsync(CancellationToken.None));
    }

    [Fact]
    public void Fuzzed_frames_only_raise_frame_exceptions()
    {
        using var codec = new FrameCodec(KeyAtoB, 1 << 16, 1 << 16);
        byte[][] seeds = [codec.Seal(ChannelKind.Raft, new byte[50], false), codec.Seal(ChannelKind.VmLog, new byte[5000], true)];
        var random = new Random(42);
        int refused = 0;
        for (int i = 0; i < 5000; i++)
        {
            byte[] input = HandshakeTests.Mutate(seeds[random.Next(seeds.Length)], random);
            using var opener = new FrameCodec(KeyAtoB, 1 << 16, 1 << 16);
            if (input.Length < 4) continue;
            try
            {
                int length = opener.ValidateLength(input.AsSpan(0, 4));
                if (input.Length - 4 < length) continue;
                opener.Open(input.AsSpan(0, 4), input.AsSpan(4, length));
            }
            catch (FrameException)
            {
                refused++;
            }
        }

        Assert.True(refused > 1000, $"only {refused} mutations reached the decoder");
    }

    /// <summary>Seals an arbitrary plaintext with sequence 0, to forge frames the real sender never produces.</summary>
    private sealed class RogueSealer(byte[] key) : IDisposable
    {
        private readonly NSec.Cryptography.Key _key = NSec.Cryptography.Key.Import(NSec.Cryptography.AeadAlgorithm.ChaCha20Poly1305, key, NSec.Cryptography.KeyBlobFormat.RawSymmetricKey);

        public byte[] Seal(byte[] plaintext)
        {
            byte[] wire = new byte[4 + plaintext.Length + 16];
            BinaryPrimitives.WriteUInt32BigEndian(wire, (uint)(plaintext.Length + 16));
            NSec.Cryptography.AeadAlgorithm.ChaCha20Poly1305.Encrypt(_key, new byte[12], wire.AsSpan(0, 4), plaintext, wire.AsSpan(4));
            return wire;
        }

        public void Dispose() => _key.Dispose();
    }
}
