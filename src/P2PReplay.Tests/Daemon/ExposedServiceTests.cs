using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using P2PReplay.Control;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Daemon;

/// <summary>
/// A replicated guest server (tests/guests echo_server: an epoll key-value server) exposed through the daemons' front
/// ends: three daemons on 127.0.0.1-3, each serving the guest's port on the same host port of its own address.
/// </summary>
[Collection("daemons")]
public sealed partial class ExposedServiceTests
{
    private const int GuestPort = 7000;

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

    private static async Task<(List<DaemonProcess> Daemons, List<string> Ids, int HostPort)> StartServerAsync(string name, int replicas, IReadOnlyList<string>? extraArguments = null)
    {
        var daemons = await ClusterProcessTests.FormClusterAsync(3, distinctHosts: true, extraArguments: extraArguments);
        var ids = new List<string>();
        foreach (var daemon in daemons) ids.Add((await daemon.StatusAsync()).NodeId);
        int hostPort = DaemonProcess.FreePort();
        var (code, output) = await Cli.RunAsync(["vm", "create", name, "--replicas", $"{replicas}", "--expose", $"{GuestPort}:{hostPort}", "--socket", daemons[0].Socket,
            "--", Repo.Guest("musl", "echo_server"), $"{GuestPort}", "epoll", "2000000000"]);
        Assert.True(code == 0, output);
        return (daemons, ids, hostPort);
    }

    /// <summary>Waits for a primary at <paramref name="minEpoch"/> or later whose replicas are all live and close behind.</summary>
    private static async Task<VmBody> WaitHealthyAsync(List<DaemonProcess> daemons, List<string> ids, string name, int replicas, ulong minEpoch, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        VmBody? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                var placement = await ShowAsync(daemons[0], name);
                var view = await ShowAsync(daemons[ids.IndexOf(placement.Primary)], name);
                last = view;
                if (view.Role == "primary" && view.Epoch >= minEpoch && view.State.StartsWith("running", StringComparison.Ordinal) && view.ReplicaStatus.Count == replicas
                    && view.ReplicaStatus.All(r => r.Live && r.LagExits < 500 && r.ReplayedExits > 0))
                    return view;
            }
            catch (ControlException)
            {
                // A daemon restarting: ask again.
            }
            await Task.Delay(50);
        }
        throw new Xunit.Sdk.XunitException($"{what}: no healthy primary; last view {(last is null ? "none" : System.Text.Json.JsonSerializer.Serialize(last, ControlJsonContext.Default.VmBody))}\n"
            + string.Join("\n", daemons.Select(d => string.Join("\n", d.Log.Split('\n').Where(l => l.Contains("vm ", StringComparison.Ordinal))))));
    }

    [KvmFact]
    public async Task Every_daemon_serves_the_exposed_port_and_all_clients_reach_the_same_vm()
    {
        var (daemons, ids, hostPort) = await StartServerAsync("kv", 2);
        try
        {
            await WaitHealthyAsync(daemons, ids, "kv", 2, 1, "start");
            // One client through each front end, the primary's own node included: they share the guest's state.
            var clients = daemons.Select(d => new KvClient(d.Host, hostPort)).ToList();
            try
            {
                await clients[0].ExchangeAsync("SET shared one", "OK");
                await clients[1].ExchangeAsync("GET shared", "VALUE one");
                await clients[2].ExchangeAsync("SET shared three", "OK");
                await clients[0].ExchangeAsync("GET shared", "VALUE three");
                await clients[1].ExchangeAsync("ECHO hello", "hello");
            }
            finally
            {
                foreach (var client in clients) client.Dispose();
            }
            // The guest saw three connections and five requests, in this order, and printed them; every copy agrees.
            string logs = await AllCopiesAgreeAsync(daemons, ids, "kv");
            Assert.Equal(5, RequestLine().Matches(logs).Count);
            Assert.Equal(3, Regex.Matches(logs, "connected").Count);

            // A bad --expose is refused with a clear error.
            var (code, output) = await Cli.RunAsync(["vm", "create", "bad", "--expose", "70000", "--socket", daemons[1].Socket, "--", Repo.Guest("musl", "echo_server")]);
            Assert.NotEqual(0, code);
            Assert.Contains("GUESTPORT[:HOSTPORT]", output, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    /// <summary>
    /// Issue 5's end-to-end test: a client streams SET/GET pairs (each reply checkable) through a front end that is
    /// not on the primary; mid-stream the primary's daemon is killed with SIGKILL, 20 times, the daemon restarted and
    /// the replica count repaired between kills. Every reply must be right, none lost, none repeated (the connection
    /// never breaks), the guest must have handled each request exactly once, and all copies must agree.
    /// </summary>
    [KvmFact]
    public async Task A_client_stream_survives_twenty_primary_kills_without_a_lost_or_repeated_byte()
    {
        // Checkpoints every 32 KiB of log (a few hundred requests): the log is dropped behind them and repaired
        // replicas start from one.
        string[] options = ["--checkpoint-every-kib", "32"];
        var (daemons, ids, hostPort) = await StartServerAsync("kv", 2, options);
        KvClient? client = null;
        int clientNode = -1;
        long requests = 0;
        var stalls = new List<double>();
        try
        {
            ulong epoch = 1;
            for (int kill = 1; kill <= 20; kill++)
            {
                var view = await WaitHealthyAsync(daemons, ids, "kv", 2, epoch, $"before kill {kill}");
                epoch = view.Epoch;
                int victim = ids.IndexOf(view.Primary);
                if (client is null || clientNode == victim)
                {
                    // The client's front end must survive the kill: move to another one between kills.
                    if (client is not null)
                    {
                        await client.DrainAsync();
                        requests += client.Checked;
                        client.Dispose();
                    }
                    clientNode = (victim + 1) % 3;
                    client = new KvClient(daemons[clientNode].Host, hostPort);
                }
                // Stream with 32 requests in flight; kill mid-stream; go on until the new primary has answered plenty.
                var streaming = client.StreamAsync(32);
                await Task.Delay(200);
                Assert.False(streaming.IsCompleted, streaming.Exception?.ToString());
                string directory = daemons[victim].Directory;
                int port = daemons[victim].Port;
                string host = daemons[victim].Host;
                long before = client.Checked;
                daemons[victim].Kill();
                var killedAt = DateTime.UtcNow;
                var deadline = killedAt + TimeSpan.FromSeconds(30);
                while (client.Checked < before + 300 && DateTime.UtcNow < deadline && !streaming.IsCompleted) await Task.Delay(10);
                stalls.Add(client.LongestGapSince(killedAt).TotalMilliseconds);
                await client.StopStreamingAsync(streaming);
                Assert.True(client.Checked >= before + 300, $"kill {kill}: the stream did not resume ({client.Checked - before} replies after the kill)");
                epoch++;
                daemons[victim] = await DaemonProcess.StartAsync(directory: directory, port: port, host: host, takeOwnership: true, extraArguments: options);
            }
            await WaitHealthyAsync(daemons, ids, "kv", 2, epoch, "after the last kill");
            await client!.ExchangeAsync("ECHO done", "done");
            requests += client.Checked + 1;
            // The guest counts what it handled: exactly the requests the clients sent, each once.
            await client.ExchangeAsync("COUNT", $"COUNT {requests + 1}");
            requests++;
            client.Dispose();
            client = null;

            // Copies rebuilt from a checkpoint show the guest's output from there on: all agree as tails of the longest.
            await CopiesAgreeAsTailsAsync(daemons, ids, "kv");
            var final = await WaitHealthyAsync(daemons, ids, "kv", 2, epoch, "at the end");
            int fromCheckpoints = daemons.Sum(d => System.Text.RegularExpressions.Regex.Matches(d.Log, "starts from a checkpoint").Count);
            Assert.True(fromCheckpoints > 0, "no repaired replica started from a checkpoint");
            Console.WriteLine($"20 kills: {requests} requests, {fromCheckpoints} copies started from checkpoints since their daemon's last start, primary holds its log from byte {final.LogStart} of {final.LogBytes}, longest reply gap after each kill: median {stalls.Order().ElementAt(stalls.Count / 2):F0} ms, max {stalls.Max():F0} ms");
        }
        finally
        {
            client?.Dispose();
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    /// <summary>
    /// Planned switchovers (`vm failover NAME --to NODE`, asked of different daemons) under a pipelined client stream
    /// through one front end: each hands the primary to the chosen replica at a higher epoch and the old primary
    /// becomes a replica; every reply is right, none lost or repeated, each request handled once, all copies agree.
    /// </summary>
    [KvmFact]
    public async Task Planned_switchovers_under_a_client_stream_lose_nothing()
    {
        var (daemons, ids, hostPort) = await StartServerAsync("kv", 2);
        var client = new KvClient(daemons[0].Host, hostPort);
        var pauses = new List<double>();
        try
        {
            ulong epoch = 1;
            var view = await WaitHealthyAsync(daemons, ids, "kv", 2, epoch, "start");
            // Refused up front: a node that is not a replica, a VM that does not exist.
            var (code, output) = await Cli.RunAsync(["vm", "failover", "kv", "--to", view.Primary, "--socket", daemons[1].Socket]);
            Assert.True(code == 1 && output.Contains("is not a replica of kv", StringComparison.Ordinal), output);
            for (int switchover = 1; switchover <= 6; switchover++)
            {
                view = await WaitHealthyAsync(daemons, ids, "kv", 2, epoch, $"before switchover {switchover}");
                Assert.Equal(epoch, view.Epoch);
                string target = view.Replicas[switchover % view.Replicas.Count];
                var streaming = client.StreamAsync(32);
                await Task.Delay(200);
                Assert.False(streaming.IsCompleted, streaming.Exception?.ToString());
                long before = client.Checked;
                var askedAt = DateTime.UtcNow;
                (code, output) = await Cli.RunAsync(["vm", "failover", "kv", "--to", target, "--socket", daemons[switchover % 3].Socket]);
                Assert.True(code == 0, $"switchover {switchover}: {output}");
                Assert.Contains($"primary {target}", output, StringComparison.Ordinal);
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
                while (client.Checked < before + 300 && DateTime.UtcNow < deadline && !streaming.IsCompleted) await Task.Delay(10);
                pauses.Add(client.LongestGapSince(askedAt).TotalMilliseconds);
                await client.StopStreamingAsync(streaming);
                Assert.True(client.Checked >= before + 300, $"switchover {switchover}: the stream did not resume ({client.Checked - before} replies after it)");
                epoch++;
                var moved = await WaitHealthyAsync(daemons, ids, "kv", 2, epoch, $"after switchover {switchover}");
                Assert.Equal(target, moved.Primary);
                Assert.Contains(view.Primary, moved.Replicas);
            }
            await client.ExchangeAsync("ECHO done", "done");
            long requests = client.Checked + 1;
            string logs = await AllCopiesAgreeAsync(daemons, ids, "kv");
            Assert.Equal(requests, RequestLine().Matches(logs).Count);
            Assert.Contains("planned switchover from", string.Join("", daemons.Select(d => d.Log)), StringComparison.Ordinal);
            Console.WriteLine($"6 switchovers: {requests} requests, longest reply gap: median {pauses.Order().ElementAt(pauses.Count / 2):F0} ms, max {pauses.Max():F0} ms");
        }
        finally
        {
            client.Dispose();
            foreach (var daemon in daemons) await daemon.DisposeAsync();
        }
    }

    /// <summary>Waits until every replica replayed all the primary did, then checks that every copy shows the same
    /// guest output (released on the primary, replayed on the replicas) and none diverged. Returns it.</summary>
    private static async Task<string> AllCopiesAgreeAsync(List<DaemonProcess> daemons, List<string> ids, string name)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        var outputs = new List<string>();
        while (true)
        {
            var primary = await ShowAsync(daemons[0], name);
            var view = await ShowAsync(daemons[ids.IndexOf(primary.Primary)], name);
            Assert.All(view.ReplicaStatus, r => Assert.NotEqual("diverged", r.State));
            outputs.Clear();
            foreach (var daemon in daemons) outputs.Add(await LogsAsync(daemon, name));
            if (view.ReplicaStatus.All(r => r.LagExits == 0) && outputs.Distinct().Count() == 1) return outputs[0];
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"the copies disagree: {string.Join(" / ", outputs.Select(o => $"{o.Length} bytes"))}; {System.Text.Json.JsonSerializer.Serialize(view, ControlJsonContext.Default.VmBody)}");
            await Task.Delay(50);
        }
    }

    /// <summary>As <see cref="AllCopiesAgreeAsync"/>, for copies that started from checkpoints: every replica has
    /// replayed all the primary did, none diverged, and each copy's output is a tail of the longest one.</summary>
    private static async Task CopiesAgreeAsTailsAsync(List<DaemonProcess> daemons, List<string> ids, string name)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var primary = await ShowAsync(daemons[0], name);
            var view = await ShowAsync(daemons[ids.IndexOf(primary.Primary)], name);
            Assert.All(view.ReplicaStatus, r => Assert.NotEqual("diverged", r.State));
            var outputs = new List<string>();
            foreach (var daemon in daemons) outputs.Add(await LogsAsync(daemon, name));
            string longest = outputs.MaxBy(o => o.Length)!;
            if (view.ReplicaStatus.All(r => r.LagExits == 0) && outputs.All(o => o.Length > 0 && longest.EndsWith(o, StringComparison.Ordinal))) return;
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"the copies disagree: {string.Join(" / ", outputs.Select(o => $"{o.Length} bytes"))}; {System.Text.Json.JsonSerializer.Serialize(view, ControlJsonContext.Default.VmBody)}");
            await Task.Delay(50);
        }
    }

    [GeneratedRegex(@"^client \d+: (SET|GET|ECHO) ", RegexOptions.Multiline)]
    private static partial Regex RequestLine();

    /// <summary>
    /// A pipelining client of echo_server: request i is "SET k{j} v{i}" (even i) or "GET k{j}" (odd i, expecting
    /// "VALUE v{i-1}"), j = (i/2) mod 32, so every reply is checkable and the key-value state spans failovers.
    /// </summary>
    private sealed class KvClient : IDisposable
    {
        private readonly TcpClient tcp;
        private readonly NetworkStream stream;
        private readonly List<DateTime> arrivals = [];
        private readonly Lock gate = new();
        private byte[] pending = [];
        private CancellationTokenSource? stop;

        public KvClient(string host, int port)
        {
            tcp = new TcpClient { NoDelay = true };
            tcp.Connect(host, port);
            stream = tcp.GetStream();
            stream.ReadTimeout = 30_000;
        }

        public long Sent { get; private set; }

        public long Checked { get; private set; }

        private static string Request(long i) => i % 2 == 0 ? $"SET k{i / 2 % 32} v{i}" : $"GET k{i / 2 % 32}";

        private static string Expected(long i) => i % 2 == 0 ? "OK" : $"VALUE v{i - 1}";

        /// <summary>One request outside the stream's numbering (the stream must be stopped).</summary>
        public async Task ExchangeAsync(string request, string reply)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(request + "\n"));
            Assert.Equal(reply, await ReadLineAsync(CancellationToken.None));
        }

        /// <summary>Sends one request outside the stream's numbering; the task completes with its reply.</summary>
        public async Task<string> SendAndReadAsync(string request)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(request + "\n"));
            return await ReadLineAsync(CancellationToken.None, TimeSpan.FromSeconds(60));
        }

        public async Task StreamAsync(int window)
        {
            stop = new CancellationTokenSource();
            var cancel = stop.Token;
            while (!cancel.IsCancellationRequested)
            {
                var batch = new StringBuilder();
                while (Sent - Checked < window) batch.Append(Request(Sent++)).Append('\n');
                if (batch.Length > 0) await stream.WriteAsync(Encoding.ASCII.GetBytes(batch.ToString()), CancellationToken.None);
                await ReadReplyAsync(CancellationToken.None);
            }
        }

        public async Task StopStreamingAsync(Task streaming)
        {
            stop?.Cancel();
            await streaming.WaitAsync(TimeSpan.FromSeconds(30));
            await DrainAsync();
        }

        /// <summary>Reads the replies to everything sent.</summary>
        public async Task DrainAsync()
        {
            while (Checked < Sent) await ReadReplyAsync(CancellationToken.None);
        }

        private async Task ReadReplyAsync(CancellationToken cancel)
        {
            string line = await ReadLineAsync(cancel);
            Assert.True(line == Expected(Checked), $"reply {Checked}: got '{line}', expected '{Expected(Checked)}'");
            Checked++;
            lock (gate) arrivals.Add(DateTime.UtcNow);
        }

        private async Task<string> ReadLineAsync(CancellationToken cancel, TimeSpan? limit = null)
        {
            while (true)
            {
                int newline = Array.IndexOf(pending, (byte)'\n');
                if (newline >= 0)
                {
                    string line = Encoding.ASCII.GetString(pending, 0, newline);
                    pending = pending[(newline + 1)..];
                    return line;
                }
                byte[] buffer = new byte[65536];
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                timeout.CancelAfter(limit ?? TimeSpan.FromSeconds(30));
                int read = await stream.ReadAsync(buffer, timeout.Token);
                if (read == 0) throw new IOException($"the front end closed the connection after {Checked} replies");
                pending = [.. pending, .. buffer.AsSpan(0, read)];
            }
        }

        /// <summary>The longest pause between replies from just before <paramref name="since"/> on (the failover).</summary>
        public TimeSpan LongestGapSince(DateTime since)
        {
            lock (gate)
            {
                var times = arrivals.Where(t => t >= since - TimeSpan.FromMilliseconds(100)).Prepend(since).Order().ToList();
                return times.Count < 2 ? TimeSpan.Zero : times.Zip(times.Skip(1), (a, b) => b - a).Max();
            }
        }

        public void Dispose()
        {
            stop?.Cancel();
            stream.Dispose();
            tcp.Dispose();
        }
    }
}
