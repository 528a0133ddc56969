using P2PReplay.Replay;
using P2PReplay.Replay.Format;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Replay;

/// <summary>Every workload of the microVM tests is recorded and replayed: same output, same status, all digests verified.</summary>
public sealed class RecordReplayTests
{
    public static TheoryData<string, string[]> Workloads()
    {
        var data = new TheoryData<string, string[]>();
        foreach (string libc in new[] { "glibc", "musl" })
        {
            foreach (string name in new[] { "hello", "malloc", "time", "random", "nullderef", "abort" }) data.Add(Repo.Guest(libc, name), []);
            data.Add(Repo.Guest(libc, "exitcode"), ["42"]);
            data.Add(Repo.Guest(libc, "argv_env"), ["a b", "GREETING"]);
            data.Add(Repo.Guest(libc, "files"), ["scratch"]);
            data.Add(Repo.Guest(libc, "stdin_cat"), []);
            data.Add(Repo.Guest(libc, "hostile"), ["7", "3000"]);
        }
        foreach (var applet in BusyboxApplets()) data.Add(Repo.Busybox, applet);
        return data;
    }

    private static IEnumerable<string[]> BusyboxApplets() =>
    [
        ["echo", "hello"], ["cat", "fruit.txt"], ["sha256sum", "fruit.txt"], ["md5sum", "fruit.txt"], ["wc", "fruit.txt"],
        ["sort", "fruit.txt"], ["uniq", "-c", "fruit.txt"], ["head", "-n", "1", "fruit.txt"], ["tail", "-n", "1", "fruit.txt"],
        ["tr", "a-z", "A-Z"], ["cut", "-c", "1-3", "fruit.txt"], ["seq", "5"], ["expr", "6", "*", "7"], ["printf", "%x\\n", "255"],
        ["awk", "{ n++ } END { print n }", "fruit.txt"], ["sed", "s/a/A/g", "fruit.txt"], ["grep", "an", "fruit.txt"],
        ["gzip", "-c", "fruit.txt"], ["ls", "-l", "/"], ["mkdir", "-p", "a/b"], ["cp", "fruit.txt", "x"], ["mv", "fruit.txt", "y"],
        ["rm", "fruit.txt"], ["date"], ["sleep", "0.01"],
        ["sh", "-c", "i=0; while [ $i -lt 50 ]; do i=$((i+1)); echo $i > f; done; read -r v < f; echo $v; while read -r w; do echo \"[$w]\"; done <<EOF\nend\nEOF\n"],
    ];

    [KvmTheory]
    [MemberData(nameof(Workloads))]
    public void Replay_reproduces_the_recording(string program, string[] args)
    {
        string root = GuestRunner.TempDirectory();
        File.WriteAllText(Path.Combine(root, "fruit.txt"), "banana\napple\ncherry\napple\n");
        string nativeDir = GuestRunner.TempDirectory(root);
        try
        {
            byte[] stdin = "line one\nline two\n"u8.ToArray();
            string[] env = ["GREETING=hi"];
            var recorded = Recordings.Record(program, args, root, env, stdin, digestInterval: 16);
            var replayed = Recordings.Replay(recorded.Log, program);
            Assert.Equal(recorded.Run.Stdout, replayed.Run.Stdout);
            Assert.Equal(recorded.Run.Stderr, replayed.Run.Stderr);
            Assert.Equal(recorded.Run.ExitCode, replayed.Run.ExitCode);
            Assert.True(replayed.Digests >= 1, "at least the final digest is checked");
            if (MatchesNatively(args))
            {
                var native = GuestRunner.Native(program, args, nativeDir, env, stdin);
                Assert.Equal(native.Stdout, replayed.Run.Stdout);
                Assert.Equal(native.ExitCode, replayed.Run.ExitCode);
            }
        }
        finally
        {
            Directory.Delete(root, true);
            Directory.Delete(nativeDir, true);
        }
    }

    /// <summary>Workloads whose output depends on the real time or on where the root is cannot match a native run.</summary>
    private static bool MatchesNatively(string[] args) => args is not (["date"] or ["ls", ..]);

    [KvmFact]
    public void A_recording_holds_only_inputs_not_deterministic_syscalls()
    {
        // The shell's echo makes thousands of write syscalls; none of them is an input. Only the random seeds are.
        var recorded = Recordings.Record(Repo.Busybox, ["sh", "-c", "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo $i; done"], digestInterval: 1_000_000);
        var replayed = Recordings.Replay(recorded.Log, Repo.Busybox);
        Assert.True(replayed.Exits > 1000, $"{replayed.Exits} exits");
        Assert.True(replayed.Events <= 3, $"{replayed.Events} input events logged for a program whose only input is its random seed");
        Assert.Equal(1, replayed.Digests); // the final one: the interval was never reached
    }

    [KvmFact]
    public void A_changed_input_is_caught_at_the_next_digest()
    {
        string program = Repo.Guest("glibc", "random");
        var recorded = Recordings.Record(program, [], digestInterval: 1);
        byte[] tampered = LogSurgery.RewriteFirstEvent(recorded.Log, InputKind.Random, e => e with { Data = e.Data.Select(b => (byte)~b).ToArray() });
        var error = Assert.Throws<ReplayDivergenceException>(() => Recordings.Replay(tampered, program));
        Assert.Contains("divergence at vCPU 0, exit", error.Message);
        Assert.Matches("memory page|register|output", error.Message);
    }

    [KvmTheory]
    [InlineData("glibc", "random", new string[0])]
    [InlineData("musl", "malloc", new string[0])]
    [InlineData("glibc", "files", new[] { "scratch" })]
    [InlineData("musl", "hostile", new[] { "3", "2000" })]
    public void Written_page_digests_verify(string libc, string name, string[] args)
    {
        // Digests of only the pages written since the previous one (KVM dirty log plus the VMM's own writes).
        string program = Repo.Guest(libc, name);
        var recorded = Recordings.Record(program, args, GuestRunner.TempDirectory(), digestInterval: 8, writtenPages: true);
        var replayed = Recordings.Replay(recorded.Log, program);
        Assert.Equal(recorded.Run.Stdout, replayed.Run.Stdout);
        Assert.True(replayed.Digests > 1);
    }

    [KvmFact]
    public void A_changed_input_is_named_down_to_the_page_with_written_page_digests()
    {
        string program = Repo.Guest("glibc", "random");
        var recorded = Recordings.Record(program, [], digestInterval: 1, writtenPages: true);
        byte[] tampered = LogSurgery.RewriteFirstEvent(recorded.Log, InputKind.Random, e => e with { Data = e.Data.Select(b => (byte)~b).ToArray() });
        var error = Assert.Throws<ReplayDivergenceException>(() => Recordings.Replay(tampered, program));
        Assert.Matches("memory page 0x[0-9a-f]+000 differs|register", error.Message);
    }

    [KvmFact]
    public void A_divergence_names_the_syscall_and_the_register_role()
    {
        string program = Repo.Guest("glibc", "stdin_cat");
        var recorded = Recordings.Record(program, [], stdin: "hello there\n"u8.ToArray(), digestInterval: 1);
        byte[] tampered = LogSurgery.RewriteFirstEvent(recorded.Log, InputKind.Stdin, e => e with { Data = e.Data[..^1] });
        var error = Assert.Throws<ReplayDivergenceException>(() => Recordings.Replay(tampered, program));
        Assert.Matches("divergence at vCPU 0, exit [0-9]+ \\(read\\): register rax \\(result of read\\): recorded 0xc, replayed 0xb", error.Message);
    }

    [KvmFact]
    public void A_missing_input_is_caught_where_the_replay_asks_for_it()
    {
        string program = Repo.Guest("musl", "time");
        var recorded = Recordings.Record(program, []);
        byte[] tampered = LogSurgery.DropEvents(recorded.Log, InputKind.Realtime);
        var error = Assert.Throws<ReplayDivergenceException>(() => Recordings.Replay(tampered, program));
        Assert.Contains("realtime clock", error.Message);
        Assert.Contains("clock_gettime", error.Message);
    }

    [KvmFact]
    public void A_cut_off_log_replays_up_to_its_last_complete_chunk()
    {
        string program = Repo.Busybox;
        var recorded = Recordings.Record(program, ["sh", "-c", "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo $i; done"], digestInterval: 256);
        Assert.True(LogSurgery.ChunkCount(recorded.Log) > 3);
        byte[] cut = recorded.Log[..(recorded.Log.Length * 2 / 3)];
        var error = Assert.Throws<ReplayTruncatedException>(() => Recordings.Replay(cut, program));
        Assert.Contains("cut off", error.Message);
        Assert.Matches("verified up to exit [1-9][0-9]*", error.Message);
    }

    [KvmFact]
    public void A_flipped_byte_is_rejected_at_its_chunk()
    {
        string program = Repo.Guest("musl", "hello");
        var recorded = Recordings.Record(program, []);
        var random = new Random(5);
        for (int i = 0; i < 50; i++)
        {
            byte[] log = (byte[])recorded.Log.Clone();
            int at = random.Next(8, log.Length);
            log[at] ^= (byte)(1 << random.Next(8));
            var error = Assert.ThrowsAny<LogFormatException>(() => Recordings.Replay(log, program));
            Assert.Matches("chunk|header", error.Message);
        }
    }

    [KvmTheory]
    [InlineData("musl", "random")]
    [InlineData("glibc", "time")]
    [InlineData("glibc", "stdin_cat")]
    public void Damaged_recordings_give_clean_errors(string libc, string name)
    {
        // Record-level damage with valid chunk checksums: the replay must report a divergence, a cut-off log or a
        // malformed record; it must never crash, hang or pass a damaged recording as verified.
        string program = Repo.Guest(libc, name);
        var recorded = Recordings.Record(program, [], stdin: "some input\nmore\n"u8.ToArray(), digestInterval: 4);
        var random = new Random(name.Length);
        int detected = 0;
        for (int iteration = 0; iteration < 60; iteration++)
        {
            byte[] damaged = LogSurgery.Mutate(recorded.Log, random);
            try
            {
                var replayed = Recordings.Replay(damaged, program);
                // Only damage that changed nothing the guest could see may pass (e.g. swapping two identical records).
                Assert.Equal(recorded.Run.Stdout, replayed.Run.Stdout);
            }
            catch (Exception e) when (e is ReplayDivergenceException or ReplayTruncatedException or LogFormatException)
            {
                detected++;
            }
        }
        Assert.True(detected >= 40, $"only {detected} of 60 damaged recordings were rejected");
    }
}
