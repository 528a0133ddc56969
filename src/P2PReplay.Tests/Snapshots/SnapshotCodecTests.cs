using System.Buffers.Binary;
using System.Text;
using P2PReplay.Replay;
using P2PReplay.Replay.Format;
using P2PReplay.Tests.Fakes;
using P2PReplay.Linux.Net;
using P2PReplay.Vmm.Snapshots;

namespace P2PReplay.Tests.Snapshots;

/// <summary>The snapshot codecs on plain data (no KVM): the personality round trip, and fuzzing of both decoders.</summary>
public sealed class SnapshotCodecTests
{
    private const int Read = 0, Write = 1, Close = 3, Lseek = 8, Dup = 32, Socket = 41, Connect = 42, Bind = 49, Listen = 50,
        Chdir = 80, Mkdir = 83, Unlink = 87, Umask = 95, Accept4 = 288, EpollCreate1 = 291, EpollCtl = 233, Pipe2 = 293, OpenAt = 257;
    private const int AtFdCwd = -100, ORdwr = 2, OCreat = 0x40;

    private static TestGuest NewGuest() => new(host: new FakeHost { Network = new InMemoryHostNetwork() });

    private static ulong SockAddrIn(TestGuest g, int port)
    {
        var s = new byte[16];
        BinaryPrimitives.WriteUInt16LittleEndian(s, 2);
        BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(2), (ushort)port);
        s[4] = 127;
        s[7] = 1;
        return g.Put(s);
    }

    private static long Put(TestGuest g, long fd, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        return g.Call(Write, fd, (long)g.Put(bytes), bytes.Length);
    }

    private static string Get(TestGuest g, long fd, int max = 64)
    {
        ulong buffer = g.Alloc(max);
        long n = g.Call(Read, fd, (long)buffer, max);
        return n < 0 ? $"error {n}" : Encoding.ASCII.GetString(g.Bytes(buffer, (int)n));
    }

    /// <summary>Files, a directory, an unlinked open file, a pipe with bytes in it, dup, sockets (a listener with a guest-internal client waiting, an accepted pair), epoll, umask.</summary>
    private static (long File, long PipeRead, long Listener, long Client, long Epoll) Populate(TestGuest g)
    {
        Assert.Equal(0, g.Call(Mkdir, (long)g.Str("work"), 0x1ED));
        Assert.Equal(0, g.Call(Chdir, (long)g.Str("work")));
        long file = g.Call(OpenAt, AtFdCwd, (long)g.Str("data"), ORdwr | OCreat, 0x1A4);
        Assert.Equal(11, Put(g, file, "hello world"));
        Assert.Equal(6, g.Call(Lseek, file, 6, 0));
        long gone = g.Call(OpenAt, AtFdCwd, (long)g.Str("/tmp/gone"), ORdwr | OCreat, 0x1A4);
        Assert.Equal(4, Put(g, gone, "temp"));
        Assert.Equal(0, g.Call(Unlink, (long)g.Str("/tmp/gone")));
        ulong fds = g.Alloc(8);
        Assert.Equal(0, g.Call(Pipe2, (long)fds, 0));
        long pipeRead = g.Read<int>(fds), pipeWrite = g.Read<int>(fds + 4);
        Assert.Equal(9, Put(g, pipeWrite, "in a pipe"));
        Assert.True(g.Call(Dup, file) > 0);
        long listener = g.Call(Socket, 2, 1, 0);
        Assert.Equal(0, g.Call(Bind, listener, (long)SockAddrIn(g, 7000), 16));
        Assert.Equal(0, g.Call(Listen, listener, 4));
        long first = g.Call(Socket, 2, 1, 0);
        Assert.Equal(0, g.Call(Connect, first, (long)SockAddrIn(g, 7000), 16));
        Assert.Equal(5, Put(g, first, "early"));
        long accepted = g.Call(Accept4, listener, 0, 0, 0);
        Assert.True(accepted > 0, $"accept4: {accepted}");
        Assert.Equal(4, Put(g, accepted, "back"));
        long second = g.Call(Socket, 2, 1 | 0x800, 0);
        Assert.Equal(0, g.Call(Connect, second, (long)SockAddrIn(g, 7000), 16));
        Assert.Equal(7, Put(g, second, "waiting"));
        long epoll = g.Call(EpollCreate1, 0);
        ulong ev = g.Alloc(12);
        BinaryPrimitives.WriteUInt32LittleEndian(g.Memory.UncheckedSpan(ev, 4), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(g.Memory.UncheckedSpan(ev + 4, 8), 77);
        Assert.Equal(0, g.Call(EpollCtl, epoll, 1, listener, (long)ev));
        Assert.Equal(0, g.Call(EpollCtl, epoll, 1, accepted, (long)ev));
        g.Call(Umask, 0x3F);
        return (file, pipeRead, listener, first, epoll);
    }

    [Fact]
    public void The_personality_round_trips_with_the_same_digest_and_behaviour()
    {
        using var a = NewGuest();
        var (file, pipeRead, listener, client, _) = Populate(a);
        byte[] state = PersonalityCodec.Capture(a.Process);
        using var b = NewGuest();
        PersonalityCodec.Restore(b.Process, state);
        Assert.Equal(PersonalityDigest.Compute(a.Process), PersonalityDigest.Compute(b.Process));
        Assert.Equal(state, PersonalityCodec.Capture(b.Process));

        // Both go on the same way: positions, pipe contents, socket queues, the waiting connection, new descriptors.
        foreach (var g in new[] { a, b })
        {
            Assert.Equal("world", Get(g, file));
            Assert.Equal("in a pipe", Get(g, pipeRead));
            Assert.Equal("back", Get(g, client));
            long accepted = g.Call(Accept4, listener, 0, 0, 0);
            Assert.Equal("waiting", Get(g, accepted));
            long again = g.Call(OpenAt, AtFdCwd, (long)g.Str("more"), ORdwr | OCreat, 0x1A4);
            Assert.Equal(3, Put(g, again, "new"));
            Assert.Equal(0, g.Call(Close, client));
        }
        Assert.Equal(PersonalityDigest.Compute(a.Process), PersonalityDigest.Compute(b.Process));
        Assert.Equal(PersonalityCodec.Capture(a.Process), PersonalityCodec.Capture(b.Process));
    }

    [Fact]
    public void Image_nodes_restore_against_a_copy_of_the_image_elsewhere()
    {
        string image = Path.Combine(Path.GetTempPath(), "p2preplay-snapimg-" + Guid.NewGuid().ToString("N"));
        string copy = image + "-copy";
        try
        {
            foreach (string dir in new[] { image, copy })
            {
                Directory.CreateDirectory(Path.Combine(dir, "etc", "deep"));
                File.WriteAllText(Path.Combine(dir, "etc", "motd"), "message of the day\n");
                File.WriteAllText(Path.Combine(dir, "etc", "deep", "x"), "x");
                File.WriteAllText(Path.Combine(dir, "etc", "changed"), "before");
            }
            using var a = new TestGuest(image, host: new FakeHost());
            long motd = a.Call(OpenAt, AtFdCwd, (long)a.Str("/etc/motd"), 0, 0);
            Assert.Equal("message", Get(a, motd, 7));
            long changed = a.Call(OpenAt, AtFdCwd, (long)a.Str("/etc/changed"), ORdwr, 0);
            Assert.Equal(5, Put(a, changed, "after"));
            byte[] state = PersonalityCodec.Capture(a.Process);

            using var b = new TestGuest(copy, host: new FakeHost());
            PersonalityCodec.Restore(b.Process, state);
            Assert.Equal(PersonalityDigest.Compute(a.Process), PersonalityDigest.Compute(b.Process));
            foreach (var g in new[] { a, b })
            {
                Assert.Equal(" of the day\n", Get(g, motd));
                Assert.Equal(0, g.Call(Lseek, changed, 0, 0));
                Assert.Equal("aftere", Get(g, changed));
                long deep = g.Call(OpenAt, AtFdCwd, (long)g.Str("/etc/deep/x"), 0, 0);
                Assert.Equal("x", Get(g, deep));
            }
            Assert.Equal(PersonalityDigest.Compute(a.Process), PersonalityDigest.Compute(b.Process));

            // Without an image the snapshot's image files cannot be found: a clear error.
            using var c = new TestGuest(null, host: new FakeHost());
            Assert.Contains("image", Assert.Throws<SnapshotFormatException>(() => PersonalityCodec.Restore(c.Process, state)).Message);
        }
        finally
        {
            Directory.Delete(image, true);
            Directory.Delete(copy, true);
        }
    }

    private static VmSnapshot Sample()
    {
        using var g = NewGuest();
        Populate(g);
        var page = new byte[8192];
        for (int i = 0; i < page.Length; i++) page[i] = (byte)(i * 7);
        return new VmSnapshot
        {
            Resume = new ReplayResumePoint("{\"version\":1}"u8.ToArray(), new LogPosition(3, 4096, 2), 10, 4, 64, 0x1234, 99),
            Exits = 70,
            SawUserModeSyscall = true,
            PhysicalSize = TestGuest.MemorySize,
            Registers = new byte[144],
            SpecialRegisters = new byte[312],
            FloatingPoint = new byte[Kvm.KvmVcpu.FpuSize],
            NextPageTable = 0x3000,
            FreePageTables = [0x2000],
            WrittenPages = [1, 2, 3],
            Personality = PersonalityCodec.Capture(g.Process),
            Memory = [new MemoryRun(0x1000, page), new MemoryRun(0x10000, page[..4096])],
        };
    }

    [Fact]
    public void A_snapshot_round_trips_through_its_encoding()
    {
        var sample = Sample();
        byte[] encoded = sample.Encode();
        var decoded = VmSnapshot.Decode(encoded);
        Assert.Equal(encoded, decoded.Encode());
        Assert.Equal(sample.TailPosition, decoded.TailPosition);
        Assert.Equal(4096, decoded.TailOffset);
        Assert.Equal(sample.Personality, decoded.Personality);
        Assert.Equal(3 * 4096, decoded.MemoryBytes);
    }

    [Fact]
    public void Lying_lengths_are_rejected_without_allocating_them()
    {
        byte[] encoded = Sample().Encode();
        var huge = encoded.ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(huge.AsSpan(16), 1UL << 40);
        Assert.Contains("more than", Assert.Throws<SnapshotFormatException>(() => VmSnapshot.Decode(huge)).Message);
        var content = new ByteWriter();
        Sample().EncodeContent(content);
        // A sealed (hash-valid) snapshot that says it holds more than it decompresses to: the buffer grows only with real data.
        byte[] sealedBytes = VmSnapshot.Seal(content.Written);
        BinaryPrimitives.WriteUInt64LittleEndian(sealedBytes.AsSpan(16), 1UL << 30);
        Assert.Throws<SnapshotFormatException>(() => VmSnapshot.Decode(sealedBytes)); // the hash covers the header
        Assert.Throws<SnapshotFormatException>(() => VmSnapshot.Decode(sealedBytes, maxContentBytes: 1 << 20));
    }

    [Fact]
    public void Fuzzed_snapshots_only_ever_throw_SnapshotFormatException()
    {
        var random = new Random(4321);
        var content = new ByteWriter();
        Sample().EncodeContent(content);
        byte[] plain = content.Written.ToArray();
        byte[] encoded = VmSnapshot.Seal(plain);
        int rejected = 0, accepted = 0;
        for (int i = 0; i < 3000; i++)
        {
            // Half the time the outer bytes (the hash stops those), half the time the content behind a valid hash.
            bool behindHash = i % 2 == 1;
            byte[] bytes = Mutate(random, behindHash ? plain : encoded);
            if (behindHash) bytes = VmSnapshot.Seal(bytes);
            try
            {
                var decoded = VmSnapshot.Decode(bytes, maxContentBytes: 64 << 20);
                using var g = NewGuest();
                PersonalityCodec.Restore(g.Process, decoded.Personality);
                PersonalityDigest.Compute(g.Process);
                accepted++;
            }
            catch (SnapshotFormatException)
            {
                rejected++;
            }
        }
        Assert.True(rejected > 2000, $"only {rejected} of 3000 mutations rejected ({accepted} accepted)");
    }

    [Fact]
    public void Fuzzed_process_state_only_ever_throws_SnapshotFormatException()
    {
        var random = new Random(99);
        byte[] state = Sample().Personality;
        int rejected = 0;
        for (int i = 0; i < 3000; i++)
        {
            byte[] bytes = Mutate(random, state);
            using var g = NewGuest();
            try
            {
                PersonalityCodec.Restore(g.Process, bytes);
                PersonalityDigest.Compute(g.Process);
                g.FileSystem.PathOf(g.Process.Files.CurrentDirectory);
            }
            catch (SnapshotFormatException)
            {
                rejected++;
            }
        }
        Assert.True(rejected > 1000, $"only {rejected} of 3000 mutations rejected");
    }

    private static byte[] Mutate(Random random, byte[] source)
    {
        byte[] bytes = [.. source];
        switch (random.Next(4))
        {
            case 0:
                return bytes[..random.Next(bytes.Length)];
            case 1:
                for (int flips = random.Next(1, 6); flips > 0; flips--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                return bytes;
            case 2:
                bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                return bytes;
            default:
                int at = random.Next(bytes.Length);
                byte[] junk = new byte[random.Next(1, 16)];
                random.NextBytes(junk);
                return [.. bytes[..at], .. junk, .. bytes[at..]];
        }
    }
}
