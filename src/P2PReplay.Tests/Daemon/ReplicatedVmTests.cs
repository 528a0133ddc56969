using System.Text;
using P2PReplay.Control;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Daemon;

/// <summary>Replicated VMs on three real daemons: the primary records, both replicas replay live and agree.</summary>
[Collection("daemons")]
public sealed class ReplicatedVmTests
{
    private static async Task<VmBody> ShowAsync(DaemonProcess daemon, string name)
    {
        using var client = daemon.Client();
        return await client.GetAsync($"/v1/vms/{name}", ControlJsonContext.Default.VmBody);
    }

    private static async Task<string> LogsAsync(DaemonProcess daemon, string name)
    {
        using var client = daemon.Client();
        return Encoding.UTF8.GetString(await client.GetBytesAsync($"/v1/vms/{name}/logs"));
    }

    [KvmFact]
    public async Task A_vm_with_two_replicas_runs_on_three_daemons_and_every_copy_agrees()
    {
        var daemons = await ClusterProcessTests.FormClusterAsync(3);
        try
        {
            string ticker = Repo.Guest("musl", "ticker");
            var (code, output) = await Cli.RunAsync(["vm", "create", "ticker", "--replicas", "2", "--socket", daemons[1].Socket, "--", ticker, "30", "20"]);
            Assert.True(code == 0, output);
            Assert.Contains("created ticker", output, StringComparison.Ordinal);

            var placement = await ShowAsync(daemons[0], "ticker");
            Assert.Equal(1UL, placement.Epoch);
            Assert.Equal(2, placement.Replicas.Count);
            var ids = new List<string>();
            foreach (var daemon in daemons) ids.Add((await daemon.StatusAsync()).NodeId);
            Assert.Equal(ids.Order(), placement.Replicas.Append(placement.Primary).Order());

            // Every copy finishes: the primary's run, and each replica's replay with its digests verified.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            var views = new List<VmBody>();
            while (DateTime.UtcNow < deadline)
            {
                views.Clear();
                foreach (var daemon in daemons) views.Add(await ShowAsync(daemon, "ticker"));
                if (views.All(v => v.State.StartsWith("exited 0", StringComparison.Ordinal) || v.State.StartsWith("finished (exited 0", StringComparison.Ordinal))) break;
                await Task.Delay(100);
            }
            Assert.All(views, v => Assert.Null(v.Error));
            var primaryView = views.Single(v => v.Role == "primary");
            Assert.Equal("exited 0", primaryView.State);
            Assert.All(views.Where(v => v.Role == "replica"), v => Assert.Matches(@"finished \(exited 0, \d+ digests verified\)", v.State));
            // The primary hears both replicas' final acknowledgements (every 50 ms): they replayed every exit.
            var primaryDaemon = daemons[ids.IndexOf(placement.Primary)];
            var acked = await ShowAsync(primaryDaemon, "ticker");
            for (int i = 0; i < 50 && !acked.ReplicaStatus.All(r => r.ReplayedExits == acked.Exits && r.State == "finished"); i++)
            {
                await Task.Delay(100);
                acked = await ShowAsync(primaryDaemon, "ticker");
            }
            Assert.All(acked.ReplicaStatus, r => Assert.Equal((acked.Exits, "finished", 0L), (r.ReplayedExits, r.State, r.LagExits)));

            // Same output everywhere, clock readings and random numbers included (they are logged inputs).
            var outputs = new List<string>();
            foreach (var daemon in daemons) outputs.Add(await LogsAsync(daemon, "ticker"));
            Assert.Contains("checksum", outputs[0], StringComparison.Ordinal);
            Assert.Equal(31, outputs[0].Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
            Assert.All(outputs, o => Assert.Equal(outputs[0], o));

            (code, output) = await Cli.RunAsync(["vm", "list", "--socket", daemons[2].Socket]);
            Assert.Equal(0, code);
            Assert.Contains("ticker", output, StringComparison.Ordinal);

            (code, output) = await Cli.RunAsync(["vm", "stop", "ticker", "--socket", daemons[0].Socket]);
            Assert.True(code == 0, output);
            foreach (var daemon in daemons)
            {
                using var client = daemon.Client();
                await Assert.ThrowsAsync<ControlException>(() => client.GetAsync("/v1/vms/ticker", ControlJsonContext.Default.VmBody));
            }
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    [KvmFact]
    public async Task Killing_the_primary_mid_run_fails_over_without_losing_or_repeating_output()
    {
        var daemons = await ClusterProcessTests.FormClusterAsync(3);
        try
        {
            var ids = new List<string>();
            foreach (var daemon in daemons) ids.Add((await daemon.StatusAsync()).NodeId);
            string ticker = Repo.Guest("musl", "ticker");
            var (code, output) = await Cli.RunAsync(["vm", "create", "tick", "--replicas", "2", "--socket", daemons[0].Socket, "--", ticker, "120", "20"]);
            Assert.True(code == 0, output);
            var first = await ShowAsync(daemons[0], "tick");
            var primary = daemons[ids.IndexOf(first.Primary)];

            // Let it run a while (the primary has produced output and shipped log), then pull the plug on it.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while ((await ShowAsync(primary, "tick")).Exits < 150 && DateTime.UtcNow < deadline) await Task.Delay(20);
            primary.Kill();
            var survivors = daemons.Where(d => d != primary).ToList();

            var views = new List<VmBody>();
            deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (DateTime.UtcNow < deadline)
            {
                views.Clear();
                foreach (var daemon in survivors) views.Add(await ShowAsync(daemon, "tick"));
                if (views.All(v => v.Epoch == 2 && v.State.StartsWith("finished (exited 0", StringComparison.Ordinal))) break;
                await Task.Delay(100);
            }
            Assert.All(views, v => Assert.Equal(2UL, v.Epoch));
            Assert.Contains(views[0].Primary, first.Replicas);
            Assert.DoesNotContain(first.Primary, views[0].Replicas);
            Assert.All(views, v => Assert.StartsWith("finished (exited 0", v.State, StringComparison.Ordinal));
            Assert.Contains(views, v => v.Role == "primary" && v.State.Contains("live since exit", StringComparison.Ordinal));
            Assert.Contains("failover from", string.Join("", survivors.Select(s => s.Log)), StringComparison.Ordinal);

            // Every tick exactly once, in order, and the same bytes on both surviving copies.
            // (The primary releases output once the replica's acknowledgement, every 50 ms, covers it.)
            var outputs = new List<string>();
            for (int attempt = 0; attempt < 40 && (outputs.Count == 0 || outputs[0] != outputs[1]); attempt++)
            {
                if (attempt > 0) await Task.Delay(50);
                outputs.Clear();
                foreach (var daemon in survivors) outputs.Add(await LogsAsync(daemon, "tick"));
            }
            Assert.Equal(outputs[0], outputs[1]);
            var lines = outputs[0].Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(Enumerable.Range(1, 120).Select(i => $"tick {i} "), lines.Where(l => l.StartsWith("tick ", StringComparison.Ordinal)).Select(l => l[..(l.IndexOf(' ', 5) + 1)]));
            Assert.StartsWith("checksum ", lines[^1], StringComparison.Ordinal);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    /// <summary>
    /// A planned switchover (no --to: the primary picks the replica holding the most log) of a guest that computes
    /// and sleeps, not a server: held between exits, it moves to a replica at epoch 2, the old primary becomes a
    /// replica replaying from the start, and all three copies end with every tick exactly once.
    /// </summary>
    [KvmFact]
    public async Task A_planned_switchover_mid_run_moves_the_primary_and_every_copy_agrees()
    {
        var daemons = await ClusterProcessTests.FormClusterAsync(3);
        try
        {
            var ids = new List<string>();
            foreach (var daemon in daemons) ids.Add((await daemon.StatusAsync()).NodeId);
            var (code, output) = await Cli.RunAsync(["vm", "create", "tick", "--replicas", "2", "--socket", daemons[0].Socket, "--", Repo.Guest("musl", "ticker"), "100", "20"]);
            Assert.True(code == 0, output);
            var first = await ShowAsync(daemons[0], "tick");
            var primary = daemons[ids.IndexOf(first.Primary)];
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while ((await ShowAsync(primary, "tick")).ReplicaStatus is var r && (r.Count < 2 || r.Any(x => x.ReplayedExits < 100)) && DateTime.UtcNow < deadline) await Task.Delay(20);

            (code, output) = await Cli.RunAsync(["vm", "failover", "tick", "--socket", daemons[ids.IndexOf(first.Replicas[0])].Socket]);
            Assert.True(code == 0, output);
            Assert.Contains("switched tick over", output, StringComparison.Ordinal);
            var moved = await ShowAsync(daemons[0], "tick");
            Assert.Equal(2UL, moved.Epoch);
            Assert.Contains(moved.Primary, first.Replicas);
            Assert.Contains(first.Primary, moved.Replicas);

            var views = new List<VmBody>();
            deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (DateTime.UtcNow < deadline)
            {
                views.Clear();
                foreach (var daemon in daemons) views.Add(await ShowAsync(daemon, "tick"));
                if (views.All(v => v.State.StartsWith("finished (exited 0", StringComparison.Ordinal))) break;
                await Task.Delay(100);
            }
            Assert.All(views, v => Assert.StartsWith("finished (exited 0", v.State, StringComparison.Ordinal));
            Assert.Contains(views, v => v.Role == "primary" && v.State.Contains("live since exit", StringComparison.Ordinal));
            var outputs = new List<string>();
            for (int attempt = 0; attempt < 40 && (outputs.Count == 0 || outputs.Distinct().Count() > 1); attempt++)
            {
                if (attempt > 0) await Task.Delay(50);
                outputs.Clear();
                foreach (var daemon in daemons) outputs.Add(await LogsAsync(daemon, "tick"));
            }
            Assert.All(outputs, o => Assert.Equal(outputs[0], o));
            var lines = outputs[0].Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(Enumerable.Range(1, 100).Select(i => $"tick {i} "), lines.Where(l => l.StartsWith("tick ", StringComparison.Ordinal)).Select(l => l[..(l.IndexOf(' ', 5) + 1)]));
            Assert.Contains("planned switchover from", string.Join("", daemons.Select(d => d.Log)), StringComparison.Ordinal);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    /// <summary>
    /// Twenty times: kill -9 the primary's daemon, restart it (it comes back with no copy and must not run one),
    /// and wait until failover and repair restored a primary with two caught-up replicas. The guest's output at the
    /// end holds every line exactly once and every copy agrees.
    /// </summary>
    [KvmFact]
    public async Task Twenty_primary_kills_with_repair_in_between_lose_and_repeat_nothing()
    {
        var daemons = await ClusterProcessTests.FormClusterAsync(3);
        try
        {
            var ids = new List<string>();
            foreach (var daemon in daemons) ids.Add((await daemon.StatusAsync()).NodeId);
            const int ticks = 4000;
            var (code, output) = await Cli.RunAsync(["vm", "create", "long", "--replicas", "2", "--socket", daemons[0].Socket, "--", Repo.Guest("musl", "ticker"), $"{ticks}", "10"]);
            Assert.True(code == 0, output);
            ulong epoch = 1;
            for (int kill = 1; kill <= 20; kill++)
            {
                // Healthy: a primary at this epoch with two live replicas close behind it.
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
                VmBody? primaryView = null;
                VmBody? last = null;
                while (DateTime.UtcNow < deadline)
                {
                    var placement = await ShowAsync(daemons[0], "long");
                    var view = await ShowAsync(daemons[ids.IndexOf(placement.Primary)], "long");
                    last = view;
                    if (view.Role == "primary" && view.Epoch >= epoch && view.ReplicaStatus.Count == 2
                        && view.ReplicaStatus.All(r => r.Live && r.LagExits < 200 && r.ReplayedExits > 0))
                    {
                        primaryView = view;
                        break;
                    }
                    await Task.Delay(50);
                }
                Assert.True(primaryView is not null, $"kill {kill}: no healthy primary with two caught-up replicas; last view {System.Text.Json.JsonSerializer.Serialize(last!, ControlJsonContext.Default.VmBody)}\n{string.Join("\n", daemons.Select(d => string.Join("\n", d.Log.Split('\n').Where(l => l.Contains("vm ", StringComparison.Ordinal) || l.Contains("gossip", StringComparison.Ordinal)))))}");
                Assert.DoesNotContain("finished", primaryView!.State, StringComparison.Ordinal);
                epoch = primaryView.Epoch;
                int victim = ids.IndexOf(primaryView.Primary);
                string directory = daemons[victim].Directory;
                int port = daemons[victim].Port;
                daemons[victim].Kill();
                // The others fail over to a higher epoch.
                deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
                while ((await ShowAsync(daemons[(victim + 1) % 3], "long")).Epoch <= epoch && DateTime.UtcNow < deadline) await Task.Delay(20);
                Assert.True((await ShowAsync(daemons[(victim + 1) % 3], "long")).Epoch > epoch, $"kill {kill}: no failover");
                epoch++;
                // The restarted daemon keeps the data dir (identity, Raft log) and takes over its cleanup.
                daemons[victim] = await DaemonProcess.StartAsync(directory: directory, port: port, takeOwnership: true);
            }

            // Let the run finish on the last primary; every copy ends with the same complete output.
            var finalDeadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            var views = new List<VmBody>();
            while (DateTime.UtcNow < finalDeadline)
            {
                views.Clear();
                foreach (var daemon in daemons) views.Add(await ShowAsync(daemon, "long"));
                if (views.All(v => v.State.StartsWith("finished (exited 0", StringComparison.Ordinal) || v.State == "exited 0")) break;
                await Task.Delay(200);
            }
            Assert.All(views, v => Assert.True(v.State.StartsWith("finished (exited 0", StringComparison.Ordinal) || v.State == "exited 0", v.State));
            var outputs = new List<string>();
            for (int attempt = 0; attempt < 40 && (outputs.Count == 0 || outputs.Distinct().Count() > 1); attempt++)
            {
                if (attempt > 0) await Task.Delay(50);
                outputs.Clear();
                foreach (var daemon in daemons) outputs.Add(await LogsAsync(daemon, "long"));
            }
            Assert.Single(outputs.Distinct());
            var lines = outputs[0].Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(Enumerable.Range(1, ticks).Select(i => $"tick {i} "), lines.Where(l => l.StartsWith("tick ", StringComparison.Ordinal)).Select(l => l[..(l.IndexOf(' ', 5) + 1)]));
            Assert.StartsWith("checksum ", lines[^1], StringComparison.Ordinal);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    /// <summary>
    /// A replica whose machine is faulty (fault injection: its VM sees wrong random bytes) diverges: its digest check
    /// catches it, the primary reports it, the leader replaces it with the fourth node, and it is never promoted.
    /// </summary>
    [KvmFact]
    public async Task A_diverging_replica_is_reported_and_replaced()
    {
        var daemons = await ClusterProcessTests.FormClusterAsync(4, new Dictionary<string, string> { ["P2PREPLAY_FAILPOINTS"] = "replica-corrupt-random" });
        try
        {
            var (code, output) = await Cli.RunAsync(["vm", "create", "faulty", "--replicas", "2", "--socket", daemons[0].Socket, "--", Repo.Guest("musl", "ticker"), "3000", "1"]);
            Assert.True(code == 0, output);
            var first = await ShowAsync(daemons[0], "faulty");
            string faulty = first.Replicas[0];

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(40);
            VmBody now = first;
            while (DateTime.UtcNow < deadline)
            {
                now = await ShowAsync(daemons[0], "faulty");
                if (!now.Replicas.Contains(faulty) && now.Replicas.Count == 2) break;
                await Task.Delay(100);
            }
            Assert.DoesNotContain(faulty, now.Replicas);
            Assert.Equal(2, now.Replicas.Count);
            Assert.Equal(first.Epoch, now.Epoch);
            Assert.Equal(first.Primary, now.Primary);
            string logs = string.Join("\n", daemons.Select(d => d.Log));
            Assert.Contains($"replica {faulty} diverged; it is replaced and never promoted", logs, StringComparison.Ordinal);
            Assert.Contains("replica diverged: divergence at", logs, StringComparison.Ordinal);
            // Removing the diverged copy stopped it on its node; no daemon died on the way.
            await Task.Delay(1000);
            Assert.All(daemons, d => Assert.False(d.HasExited, $"a daemon died:\n{d.Log}"));
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    /// <summary>
    /// Each replica's daemon gets one corrupt piece of log (a flipped bit, once per process): the replay stops with a
    /// clear error, the primary has the failed copy dropped from the placement, and repair gives the VM a fresh copy
    /// that replays cleanly. No daemon dies.
    /// </summary>
    [KvmFact]
    public async Task A_replica_fed_a_corrupt_log_fails_cleanly_and_is_replaced()
    {
        var daemons = await ClusterProcessTests.FormClusterAsync(3, new Dictionary<string, string> { ["P2PREPLAY_FAILPOINTS"] = "replica-corrupt-log" });
        try
        {
            var (code, output) = await Cli.RunAsync(["vm", "create", "tampered", "--replicas", "2", "--socket", daemons[0].Socket, "--", Repo.Guest("musl", "ticker"), "3000", "1"]);
            Assert.True(code == 0, output);
            var first = await ShowAsync(daemons[0], "tampered");
            var ids = new List<string>();
            foreach (var daemon in daemons) ids.Add((await daemon.StatusAsync()).NodeId);
            var primary = daemons[ids.IndexOf(first.Primary)];

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(40);
            VmBody view = first;
            string logs = "";
            while (DateTime.UtcNow < deadline)
            {
                view = await ShowAsync(primary, "tampered");
                logs = string.Join("\n", daemons.Select(d => d.Log));
                if (logs.Contains("unreadable log from the primary", StringComparison.Ordinal) && logs.Contains("dropping it from the placement", StringComparison.Ordinal)
                    && view.ReplicaStatus.Count == 2 && view.ReplicaStatus.All(r => r.Live && r.State == "replaying" && r.LagExits < 200 && r.ReplayedExits > 100))
                    break;
                await Task.Delay(100);
            }
            Assert.Contains("unreadable log from the primary", logs, StringComparison.Ordinal);
            Assert.Contains("dropping it from the placement", logs, StringComparison.Ordinal);
            Assert.True(view.ReplicaStatus.Count == 2 && view.ReplicaStatus.All(r => r.Live && r.State == "replaying"),
                $"no two healthy replicas again: {System.Text.Json.JsonSerializer.Serialize(view, ControlJsonContext.Default.VmBody)}");
            Assert.Equal(first.Epoch, view.Epoch);
            Assert.All(daemons, d => Assert.False(d.HasExited, $"a daemon died:\n{d.Log}"));
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    [Fact]
    public async Task Bad_vm_requests_get_clear_errors()
    {
        var daemons = await ClusterProcessTests.FormClusterAsync(3);
        try
        {
            string ticker = Repo.Guest("musl", "ticker");
            var (code, output) = await Cli.RunAsync(["vm", "create", "big", "--replicas", "5", "--socket", daemons[0].Socket, "--", ticker]);
            Assert.Equal(1, code);
            Assert.Contains("5 replicas need 6 live nodes; the cluster has 3", output, StringComparison.Ordinal);

            (code, output) = await Cli.RunAsync(["vm", "create", "missing", "--socket", daemons[0].Socket, "--", "/nonexistent/program"]);
            Assert.Equal(1, code);
            Assert.Contains("cannot read /nonexistent/program", output, StringComparison.Ordinal);

            (code, output) = await Cli.RunAsync(["vm", "create", "bad name!", "--socket", daemons[0].Socket, "--", ticker]);
            Assert.Equal(1, code);
            Assert.Contains("a VM name is", output, StringComparison.Ordinal);

            (code, output) = await Cli.RunAsync(["vm", "show", "nothing", "--socket", daemons[0].Socket]);
            Assert.Equal(1, code);
            Assert.Contains("no VM named nothing", output, StringComparison.Ordinal);

            (code, output) = await Cli.RunAsync(["vm", "failover", "nothing", "--socket", daemons[0].Socket]);
            Assert.Equal(1, code);
            Assert.Contains("no VM named nothing", output, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }
}
