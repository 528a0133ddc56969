using System.Diagnostics;
using P2PReplay.Replay;
using P2PReplay.Tests.Fakes;
using P2PReplay.Tests.Support;
using P2PReplay.Vmm;
using P2PReplay.Vmm.Snapshots;
using Xunit.Abstractions;

namespace P2PReplay.Tests.Snapshots;

/// <summary>
/// Snapshot cost for a guest with a touched 64 MiB heap (bench/snapshot.sh runs it with P2PREPLAY_BENCH=1 and prints
/// the lines starting with "bench:"). Without that variable it runs once, small, as a smoke test.
/// </summary>
public sealed class SnapshotBenchmark(ITestOutputHelper output)
{
    [KvmTheory]
    [InlineData("pattern")]
    [InlineData("random")]
    public void Snapshot_take_encode_decode_restore(string fill)
    {
        bool bench = Environment.GetEnvironmentVariable("P2PREPLAY_BENCH") == "1";
        int heapMib = bench ? 64 : 4, reps = bench ? 5 : 1;
        string program = Repo.Guest("musl", "snapmix");
        var recording = SnapshotReplayTests.Record(program, [heapMib.ToString(), "200", fill], chunkBytes: 64 * 1024, digestInterval: 4096);
        Assert.Equal(0, recording.Status);
        long exits = Recordings.Replay(recording.Log, program).Exits;
        long at = exits / 2;

        var take = new List<double>();
        var encode = new List<double>();
        var decode = new List<double>();
        var restore = new List<double>();
        var tailRun = new List<double>();
        long size = 0, memoryBytes = 0, tailBytes = 0;
        for (int rep = 0; rep < reps; rep++)
        {
            VmSnapshot snapshot;
            TimeSpan pause;
            using (var replayer = new Replayer(new MemoryStream(recording.Log)))
            using (var vm = MicroVm.Create(recording.Config, new ReplayingHost(replayer, new FakeHost()), null))
            {
                var snaps = ReplaySnapshots.Attach(vm, replayer);
                var request = snaps.RequestAt(at);
                vm.Run();
                snapshot = request.GetAwaiter().GetResult();
                pause = snaps.LastCaptureTime;
            }
            take.Add(pause.TotalMilliseconds);
            var sw = Stopwatch.StartNew();
            byte[] encoded = snapshot.Encode();
            encode.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            var decoded = VmSnapshot.Decode(encoded);
            decode.Add(sw.Elapsed.TotalMilliseconds);
            size = encoded.Length;
            memoryBytes = snapshot.MemoryBytes;
            byte[] tail = recording.Log[(int)decoded.TailOffset..];
            tailBytes = tail.Length;
            sw.Restart();
            var (restored, tailReplayer, _) = ReplaySnapshots.StartReplica(recording.Config, decoded, new MemoryStream(tail), new FakeHost());
            restore.Add(sw.Elapsed.TotalMilliseconds);
            using (restored)
            using (tailReplayer)
            {
                sw.Restart();
                Assert.Equal(0, (restored.Run() ?? throw new InvalidOperationException("paused")).ShellStatus);
                tailRun.Add(sw.Elapsed.TotalMilliseconds);
                Assert.Equal(recording.Output, tailReplayer.Output.Value);
            }
        }
        output.WriteLine($"bench: snapmix {heapMib} MiB heap ({fill}), snapshot at exit {at} of {exits}, log {recording.Log.Length} B, tail {tailBytes} B");
        output.WriteLine($"bench: take (vCPU pause) {Median(take):F1} ms | encode {Median(encode):F1} ms | decode {Median(decode):F1} ms | " +
            $"restore {Median(restore):F1} ms | tail replay {Median(tailRun):F1} ms | memory {memoryBytes / 1048576.0:F1} MiB | encoded {size / 1048576.0:F2} MiB");
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
}
