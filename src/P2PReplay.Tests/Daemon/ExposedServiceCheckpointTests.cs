using System.Text.Json;
using P2PReplay.Control;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Daemon;

/// <summary>Repair from checkpoints: replicas' VM snapshots let the log be dropped behind them and new replicas start from one.</summary>
public sealed partial class ExposedServiceTests
{
    /// <summary>
    /// With a checkpoint every 256 KiB of log, under a pipelined client stream: the primary drops its log behind the
    /// checkpoints; a replica whose daemon is killed and restarted comes back from a checkpoint (not from the log's
    /// start, which is gone); a planned switchover hands it the primary and it serves a new connection; then it is
    /// killed, a replica takes over and it comes back from the new primary's checkpoint. Every reply is right, each request handled once, no copy diverges,
    /// and every copy's output is the tail of the one copy that ran throughout.
    /// </summary>
    [KvmFact]
    public async Task Replicas_rebuilt_from_checkpoints_serve_on_while_the_log_is_dropped_behind_them()
    {
        string[] options = ["--checkpoint-every-kib", "256"];
        var (daemons, ids, hostPort) = await StartServerAsync("kv", 2, options);
        KvClient? client = null;
        try
        {
            var view = await WaitHealthyAsync(daemons, ids, "kv", 2, 1, "start");
            int primary = ids.IndexOf(view.Primary);
            int restarted = ids.IndexOf(view.Replicas[0]);
            int survivor = ids.IndexOf(view.Replicas[1]);
            // The client's front end is on the node that is never killed.
            client = new KvClient(daemons[survivor].Host, hostPort);
            var streaming = client.StreamAsync(32);

            var truncated = await WaitForAsync(() => ShowAsync(daemons[primary], "kv"), v => v.LogStart > 0, "the primary dropping log behind a checkpoint");
            Assert.InRange(truncated.CheckpointOffset, truncated.LogStart, truncated.LogBytes);

            // A replica's daemon dies and comes back: its copy starts from a checkpoint.
            await RestartAsync(daemons, restarted, options);
            await WaitHealthyAsync(daemons, ids, "kv", 2, 1, "after the replica came back");
            await daemons[restarted].WaitForLogAsync("starts from a checkpoint", TimeSpan.FromSeconds(5));
            var rebuilt = await ShowAsync(daemons[restarted], "kv");
            Assert.True(rebuilt.LogStart > 0, $"the rebuilt replica holds the log from {rebuilt.LogStart}");

            // Hand the primary to the copy that started from a checkpoint (it knows the connections from the checkpoint
            // and the guest's listening port): a new client connection is served by it.
            var (code, output) = await Cli.RunAsync(["vm", "failover", "kv", "--to", ids[restarted], "--socket", daemons[survivor].Socket]);
            Assert.True(code == 0, output);
            using (var fresh = new KvClient(daemons[survivor].Host, hostPort))
            {
                await fresh.ExchangeAsync("ECHO fresh", "fresh");
            }
            (primary, restarted) = (restarted, primary);
            await WaitHealthyAsync(daemons, ids, "kv", 2, 2, "after the switchover");

            // The primary's daemon dies: a replica takes over; the old primary comes back from the new primary's checkpoint.
            long before = client.Checked;
            daemons[primary].Kill();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (client.Checked < before + 300 && DateTime.UtcNow < deadline && !streaming.IsCompleted) await Task.Delay(10);
            Assert.True(client.Checked >= before + 300, $"the stream did not resume after the primary was killed ({client.Checked - before} replies)");
            await RestartAsync(daemons, primary, options, kill: false);
            var after = await WaitHealthyAsync(daemons, ids, "kv", 2, 3, "after the primary came back");
            Assert.NotEqual(ids[primary], after.Primary);
            await daemons[primary].WaitForLogAsync("starts from a checkpoint", TimeSpan.FromSeconds(5));

            await client.StopStreamingAsync(streaming);
            await client.ExchangeAsync("ECHO done", "done");
            long requests = client.Checked + 2;
            var final = await WaitHealthyAsync(daemons, ids, "kv", 2, after.Epoch, "at the end");
            Assert.True(final.LogStart > 0 && final.LogBytes - final.LogStart < final.LogBytes, $"the primary holds its log from {final.LogStart} of {final.LogBytes}");

            // The copy that ran throughout has all the output: each request once; every other copy's is its tail.
            // (A replica shows what it has replayed, the primary what every replica acknowledged: wait for the last.)
            string full = await LogsAsync(daemons[survivor], "kv");
            for (int attempt = 0; attempt < 200 && RequestLine().Matches(full).Count < requests; attempt++)
            {
                await Task.Delay(50);
                full = await LogsAsync(daemons[survivor], "kv");
            }
            Assert.Equal(requests, RequestLine().Matches(full).Count);
            foreach (int i in new[] { primary, restarted })
            {
                string tail = await LogsAsync(daemons[i], "kv");
                for (int attempt = 0; attempt < 100 && !full.EndsWith(tail, StringComparison.Ordinal); attempt++)
                {
                    await Task.Delay(50);
                    full = await LogsAsync(daemons[survivor], "kv");
                    tail = await LogsAsync(daemons[i], "kv");
                }
                Assert.True(tail.Length > 0 && full.EndsWith(tail, StringComparison.Ordinal), $"copy {i}'s output ({tail.Length} bytes) is not the tail of the full one ({full.Length} bytes)");
            }
            Console.WriteLine($"checkpoints: {requests} requests; primary holds {final.LogBytes - final.LogStart} of {final.LogBytes} log bytes");
        }
        finally
        {
            client?.Dispose();
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    private static async Task RestartAsync(List<DaemonProcess> daemons, int index, string[] options, bool kill = true)
    {
        var victim = daemons[index];
        if (kill) victim.Kill();
        daemons[index] = await DaemonProcess.StartAsync(directory: victim.Directory, port: victim.Port, host: victim.Host, takeOwnership: true, extraArguments: options);
    }

    private static async Task<VmBody> WaitForAsync(Func<Task<VmBody>> read, Func<VmBody, bool> done, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        VmBody last = await read();
        while (!done(last))
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"no {what} within 60 s; last view {JsonSerializer.Serialize(last, ControlJsonContext.Default.VmBody)}");
            await Task.Delay(50);
            last = await read();
        }
        return last;
    }
}
