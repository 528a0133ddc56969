using System.Net.Sockets;
using P2PReplay.Control;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Daemon;

/// <summary>Real daemons (the published binary) on loopback: forming a cluster from seeds, losing the leader.</summary>
[Collection("daemons")]
public sealed class ClusterProcessTests
{
    private static readonly TimeSpan Formation = TimeSpan.FromSeconds(30);

    /// <param name="distinctHosts">Daemon i listens on 127.0.0.(i+1) (as machines with their own addresses would; the
    /// front ends of exposed guest ports then serve the same host port on each).</param>
    /// <param name="environmentOf">Daemon i's environment instead of <paramref name="environment"/> (e.g. a failpoint on one node).</param>
    internal static async Task<List<DaemonProcess>> FormClusterAsync(int count, IReadOnlyDictionary<string, string>? environment = null, bool distinctHosts = false,
        Func<int, IReadOnlyDictionary<string, string>?>? environmentOf = null, IReadOnlyList<string>? extraArguments = null)
    {
        var daemons = new List<DaemonProcess>();
        string Host(int i) => distinctHosts ? $"127.0.0.{i + 1}" : "127.0.0.1";
        try
        {
            daemons.Add(await DaemonProcess.StartAsync(environment: environmentOf is null ? environment : environmentOf(0), host: Host(0), extraArguments: extraArguments));
            using (var client = daemons[0].Client())
            {
                string token = (await client.PostAsync("/v1/cluster/init", ControlJsonContext.Default.TokenBody)).Token;
                for (int i = 1; i < count; i++)
                {
                    var daemon = await DaemonProcess.StartAsync(environment: environmentOf is null ? environment : environmentOf(i), host: Host(i), extraArguments: extraArguments);
                    daemons.Add(daemon);
                    using var joiner = daemon.Client();
                    await joiner.PostAsync("/v1/cluster/join", new TokenBody(token), ControlJsonContext.Default.TokenBody, ControlJsonContext.Default.StatusBody);
                }
            }
            // The leader keeps an odd number of voters, at most 5; the others are learners.
            int voters = ExpectedVoters(count);
            foreach (var daemon in daemons)
            {
                await daemon.WaitForAsync(s => s.Leader is not null && s.Voters == voters && s.Members.Count(m => m.Status == "alive") == count,
                    Formation, $"{count} daemons agreeing on a leader with {voters} voters");
            }
            return daemons;
        }
        catch
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
            throw;
        }
    }

    internal static int ExpectedVoters(int members) => Math.Min(members % 2 == 1 ? members : members - 1, 5);

    [Fact]
    public async Task Three_daemons_form_a_cluster_and_elect_a_new_leader_when_the_leader_is_killed()
    {
        var daemons = await FormClusterAsync(3);
        try
        {
            var before = await daemons[0].StatusAsync();
            string leader = before.Leader!;
            var statuses = new List<StatusBody>();
            foreach (var daemon in daemons) statuses.Add(await daemon.StatusAsync());
            Assert.All(statuses, s => Assert.Equal(leader, s.Leader));
            var victim = daemons[statuses.FindIndex(s => s.NodeId == leader)];
            victim.Kill();
            var survivors = daemons.Where(d => d != victim).ToList();
            var survivorIds = statuses.Where(s => s.NodeId != leader).Select(s => s.NodeId).ToList();
            foreach (var survivor in survivors)
            {
                var after = await survivor.WaitForAsync(s => s.Leader is not null && s.Leader != leader && s.Term > before.Term,
                    TimeSpan.FromSeconds(10), "a new leader after kill -9 of the old one");
                Assert.Contains(after.Leader, survivorIds);
            }
            // The survivors see the killed node as failed through gossip.
            await survivors[0].WaitForAsync(s => s.Members.Single(m => m.Id == leader).Status is "dead" or "suspect",
                TimeSpan.FromSeconds(10), "the killed leader marked failed");
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    [Fact]
    public async Task Five_daemons_with_a_restarted_member_rejoin_from_the_data_dir()
    {
        var daemons = await FormClusterAsync(5);
        try
        {
            var first = await daemons[0].StatusAsync();
            var follower = first.Leader == first.NodeId ? daemons[1] : daemons[0];
            string id = (await follower.StatusAsync()).NodeId;
            string directory = follower.Directory;
            int port = follower.Port;
            follower.Kill();
            var restarted = await DaemonProcess.StartAsync(directory: directory, port: port);
            daemons[daemons.IndexOf(follower)] = restarted;
            var status = await restarted.WaitForAsync(s => s.InCluster && s.Leader is not null && s.Members.Count(m => m.Status == "alive") == 5,
                TimeSpan.FromSeconds(20), "the restarted member back in the cluster without seeds");
            Assert.Equal(id, status.NodeId);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    [Fact]
    public async Task Status_and_peers_commands_print_the_cluster()
    {
        var daemons = await FormClusterAsync(3);
        try
        {
            var (code, output) = await Cli.RunAsync(["status", "--socket", daemons[1].Socket]);
            Assert.Equal(0, code);
            Assert.Contains("leader", output, StringComparison.Ordinal);
            Assert.Contains("3 alive of 3", output, StringComparison.Ordinal);

            (code, output) = await Cli.RunAsync(["peers", "--socket", daemons[1].Socket]);
            Assert.Equal(0, code);
            string[] lines = output.Trim().Split('\n');
            Assert.StartsWith("ID", lines[0], StringComparison.Ordinal);
            Assert.Contains("RTT", lines[0], StringComparison.Ordinal);
            Assert.Equal(4, lines.Length);
            foreach (var daemon in daemons) Assert.Contains(daemon.Address, output, StringComparison.Ordinal);

            (code, output) = await Cli.RunAsync(["peers", "--json", "--socket", daemons[1].Socket]);
            Assert.Equal(0, code);
            var peers = System.Text.Json.JsonSerializer.Deserialize(output, ControlJsonContext.Default.ListPeerBody)!;
            Assert.Equal(3, peers.Count);
            Assert.Single(peers, p => p.Self);
            Assert.All(peers.Where(p => !p.Self), p => Assert.NotNull(p.RoundTripMs));

            (code, output) = await Cli.RunAsync(["status", "--json", "--socket", daemons[2].Socket]);
            Assert.Equal(0, code);
            var status = System.Text.Json.JsonSerializer.Deserialize(output, ControlJsonContext.Default.StatusBody)!;
            Assert.Equal(3, status.Voters);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    [Fact]
    public async Task Cli_reports_a_missing_daemon_and_a_refused_socket()
    {
        var (code, output) = await Cli.RunAsync(["status", "--socket", "/nonexistent/p2preplay.sock"]);
        Assert.Equal(1, code);
        Assert.Contains("no daemon is listening", output, StringComparison.Ordinal);

        await using var daemon = await DaemonProcess.StartAsync();
        File.SetUnixFileMode(daemon.Socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        // As an unprivileged user (nobody), the socket's file mode refuses the connection.
        (code, output) = await Cli.RunAsync(["status", "--socket", daemon.Socket], asUser: "nobody");
        Assert.Equal(1, code);
        Assert.Contains("permission denied", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Daemon_stops_cleanly_on_sigterm_and_keeps_its_identity()
    {
        var daemon = await DaemonProcess.StartAsync();
        string id = (await daemon.StatusAsync()).NodeId;
        Assert.Equal(0, await daemon.TerminateAsync());
        Assert.False(File.Exists(daemon.Socket));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(daemon.DataDir, "node.key")));
        await using var again = await DaemonProcess.StartAsync(directory: daemon.Directory);
        Assert.Equal(id, (await again.StatusAsync()).NodeId);
        await daemon.DisposeAsync();
    }

    [Fact]
    public async Task Bad_config_stops_the_daemon_with_a_message()
    {
        string directory = Directory.CreateTempSubdirectory("p2p-config-").FullName;
        try
        {
            string file = Path.Combine(directory, "p2preplay.conf");
            await File.WriteAllTextAsync(file, "listen = 0.0.0.0:7410\ncolour = blue\n");
            var (code, output) = await Cli.RunAsync(["daemon", "--config", file]);
            Assert.Equal(2, code);
            Assert.Contains("p2preplay.conf:2: unknown setting 'colour'", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }
}

/// <summary>Runs the published binary as a CLI and collects its output.</summary>
internal static class Cli
{
    public static async Task<(int Code, string Output)> RunAsync(IReadOnlyList<string> arguments, string? asUser = null)
    {
        var start = asUser is null
            ? new System.Diagnostics.ProcessStartInfo(Repo.Binary)
            : new System.Diagnostics.ProcessStartInfo("setpriv", ["--reuid", asUser, "--regid", "nogroup", "--clear-groups", Repo.Binary]);
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        using var process = System.Diagnostics.Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
