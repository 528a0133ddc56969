using System.Diagnostics;
using System.Globalization;
using System.Text;
using P2PReplay.Control;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Daemon;

/// <summary>
/// Issue 5's partition test: three daemons in their own network namespaces on one bridge (the test process reaches
/// all of them through it); the primary's namespace is cut off from the other two with blackhole routes.
/// </summary>
public sealed partial class ExposedServiceTests
{
    private static async Task Ip(params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardError = true };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        using var ip = Process.Start(start)!;
        string error = await ip.StandardError.ReadToEndAsync();
        await ip.WaitForExitAsync();
        if (ip.ExitCode != 0) throw new InvalidOperationException($"ip {string.Join(' ', arguments)}: {error}");
    }

    /// <summary>
    /// The primary is cut off mid-stream: the majority side elects a new primary that serves the stream on; a client
    /// of the old primary's own front end gets no reply while the partition lasts (its request was handled by a guest
    /// whose replicas are out of reach, so that output may never leave); after healing the old primary learns the new
    /// epoch, drops its copy and rejoins as a replica, the held request is served once by the new primary, and all
    /// copies agree (no split brain).
    /// </summary>
    [KvmRootFact]
    public async Task A_cut_off_primary_releases_nothing_and_the_majority_serves_on()
    {
        string tag = (Environment.ProcessId % 10000).ToString("d4", CultureInfo.InvariantCulture);
        int subnet = 10 + Environment.ProcessId % 200;
        string[] namespaces = [$"p2pp0{tag}", $"p2pp1{tag}", $"p2pp2{tag}"];
        string bridge = $"p2pbr{tag}";
        string Address(int i) => $"10.233.{subnet}.{i + 1}";
        var daemons = new List<DaemonProcess>();
        var cuts = new List<string[]>();
        KvClient? main = null, cutClient = null;
        try
        {
            await Ip("link", "add", bridge, "type", "bridge");
            await Ip("addr", "add", $"10.233.{subnet}.254/24", "dev", bridge);
            await Ip("link", "set", bridge, "up");
            for (int i = 0; i < 3; i++)
            {
                string inside = $"p2pv{i}{tag}", outside = $"p2pw{i}{tag}";
                await Ip("netns", "add", namespaces[i]);
                await Ip("link", "add", inside, "type", "veth", "peer", "name", outside);
                await Ip("link", "set", inside, "netns", namespaces[i]);
                await Ip("link", "set", outside, "master", bridge);
                await Ip("link", "set", outside, "up");
                await Ip("-n", namespaces[i], "addr", "add", $"{Address(i)}/24", "dev", inside);
                await Ip("-n", namespaces[i], "link", "set", "lo", "up");
                await Ip("-n", namespaces[i], "link", "set", inside, "up");
            }
            for (int i = 0; i < 3; i++)
                daemons.Add(await DaemonProcess.StartAsync(prefix: ["ip", "netns", "exec", namespaces[i]], host: Address(i), port: 7410, site: $"site-{i}"));
            using (var client = daemons[0].Client())
            {
                string token = (await client.PostAsync("/v1/cluster/init", ControlJsonContext.Default.TokenBody)).Token;
                foreach (var daemon in daemons.Skip(1))
                {
                    using var joiner = daemon.Client();
                    await joiner.PostAsync("/v1/cluster/join", new TokenBody(token), ControlJsonContext.Default.TokenBody, ControlJsonContext.Default.StatusBody);
                }
            }
            foreach (var daemon in daemons)
                await daemon.WaitForAsync(s => s.Leader is not null && s.Voters == 3 && s.Members.Count(m => m.Status == "alive") == 3, TimeSpan.FromSeconds(30), "three daemons in three namespaces");
            var ids = new List<string>();
            foreach (var daemon in daemons) ids.Add((await daemon.StatusAsync()).NodeId);
            var (code, output) = await Cli.RunAsync(["vm", "create", "kv", "--replicas", "2", "--expose", $"{GuestPort}", "--socket", daemons[0].Socket,
                "--", Repo.Guest("musl", "echo_server"), $"{GuestPort}", "epoll", "2000000000"]);
            Assert.True(code == 0, output);
            var view = await WaitHealthyAsync(daemons, ids, "kv", 2, 1, "start");
            int old = ids.IndexOf(view.Primary);
            int other = (old + 1) % 3;
            main = new KvClient(Address(other), GuestPort);
            cutClient = new KvClient(Address(old), GuestPort);
            await main.ExchangeAsync("SET before one", "OK");
            await cutClient.ExchangeAsync("GET before", "VALUE one");

            var streaming = main.StreamAsync(32);
            await Task.Delay(200);
            Assert.False(streaming.IsCompleted, streaming.Exception?.ToString());
            long before = main.Checked;
            // The cut: the old primary's namespace drops everything for the other two, and they for it.
            for (int i = 0; i < 3; i++)
            {
                if (i == old) continue;
                cuts.Add(["-n", namespaces[old], "route", "add", "blackhole", $"{Address(i)}/32"]);
                cuts.Add(["-n", namespaces[i], "route", "add", "blackhole", $"{Address(old)}/32"]);
            }
            foreach (var cut in cuts) await Ip(cut);
            var cutAt = DateTime.UtcNow;
            // A request to the cut-off primary's own front end: its guest may handle it, but must not answer.
            var held = cutClient.SendAndReadAsync("SET split two");

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (main.Checked < before + 300 && DateTime.UtcNow < deadline && !streaming.IsCompleted) await Task.Delay(10);
            Assert.True(main.Checked >= before + 300, $"the majority side did not serve on ({main.Checked - before} replies after the cut)");
            var majority = await ShowAsync(daemons[other], "kv");
            Assert.True(majority.Epoch >= 2 && majority.Primary != ids[old], $"no new primary on the majority side: epoch {majority.Epoch}, primary {majority.Primary}");
            // Past every timeout that could let a lonely primary go on (replica silence, liveness): still no reply.
            while (DateTime.UtcNow - cutAt < TimeSpan.FromSeconds(4)) await Task.Delay(50);
            Assert.False(held.IsCompleted, $"the cut-off primary answered: {(held.IsCompletedSuccessfully ? held.Result : held.Exception?.Message)}");
            var lonely = await ShowAsync(daemons[old], "kv");
            Assert.Equal(1UL, lonely.Epoch);
            Assert.DoesNotContain("SET split", await LogsAsync(daemons[old], "kv"), StringComparison.Ordinal);
            Assert.DoesNotContain("SET split", await LogsAsync(daemons[other], "kv"), StringComparison.Ordinal);
            await main.StopStreamingAsync(streaming);

            // Heal: the old primary learns the new epoch, drops its copy and becomes a replica; the held request is
            // served by the new primary, once.
            foreach (var cut in cuts)
            {
                string[] heal = [.. cut];
                heal[3] = "del";
                await Ip(heal);
            }
            cuts.Clear();
            Assert.Equal("OK", await held.WaitAsync(TimeSpan.FromSeconds(30)));
            await cutClient.ExchangeAsync("GET split", "VALUE two");
            await main.ExchangeAsync("GET split", "VALUE two");
            var healed = await WaitHealthyAsync(daemons, ids, "kv", 2, majority.Epoch, "after healing");
            Assert.NotEqual(ids[old], healed.Primary);
            string logs = await AllCopiesAgreeAsync(daemons, ids, "kv");
            // Every request handled exactly once: the stream, SET before, GET before, SET split, and two GET split.
            Assert.Equal(main.Checked + 5, RequestLine().Matches(logs).Count);
            Assert.Single(System.Text.RegularExpressions.Regex.Matches(logs, "SET split two"));
        }
        finally
        {
            main?.Dispose();
            cutClient?.Dispose();
            foreach (var daemon in daemons) await daemon.DisposeAsync();
            foreach (string ns in namespaces)
            {
                try
                {
                    await Ip("netns", "del", ns);
                }
                catch (InvalidOperationException)
                {
                }
            }
            try
            {
                await Ip("link", "del", bridge);
            }
            catch (InvalidOperationException)
            {
            }
        }
    }
}
