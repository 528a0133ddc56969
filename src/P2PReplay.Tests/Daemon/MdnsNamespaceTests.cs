using System.Diagnostics;
using P2PReplay.Control;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Daemon;

/// <summary>
/// Two daemons in separate network namespaces joined by a veth pair find each other by mDNS alone: the join token
/// carries no seed address and no --seed is given. The test creates and removes the namespaces.
/// </summary>
[Collection("daemons")]
public sealed class MdnsNamespaceTests
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

    [RootFact]
    public async Task Daemons_in_two_namespaces_find_each_other_by_mdns()
    {
        string tag = (Environment.ProcessId % 100000).ToString("d5", System.Globalization.CultureInfo.InvariantCulture);
        string nsA = $"p2pA{tag}", nsB = $"p2pB{tag}", vethA = $"p2va{tag}", vethB = $"p2vb{tag}";
        int subnet = 100 + Environment.ProcessId % 100;
        string addressA = $"10.231.{subnet}.1", addressB = $"10.231.{subnet}.2";
        DaemonProcess? a = null, b = null;
        try
        {
            await Ip("netns", "add", nsA);
            await Ip("netns", "add", nsB);
            await Ip("link", "add", vethA, "type", "veth", "peer", "name", vethB);
            await Ip("link", "set", vethA, "netns", nsA);
            await Ip("link", "set", vethB, "netns", nsB);
            foreach (var (ns, veth, address) in new[] { (nsA, vethA, addressA), (nsB, vethB, addressB) })
            {
                await Ip("-n", ns, "addr", "add", $"{address}/24", "dev", veth);
                await Ip("-n", ns, "link", "set", "lo", "up");
                await Ip("-n", ns, "link", "set", veth, "up");
                await Ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", veth);
            }

            a = await DaemonProcess.StartAsync(prefix: ["ip", "netns", "exec", nsA], host: addressA, port: 7410, mdns: true, site: "site-a");
            b = await DaemonProcess.StartAsync(prefix: ["ip", "netns", "exec", nsB], host: addressB, port: 7410, mdns: true, site: "site-b");
            string token;
            using (var client = a.Client())
            {
                token = (await client.PostAsync("/v1/cluster/init", new InitBody(IncludeSeeds: false), ControlJsonContext.Default.InitBody, ControlJsonContext.Default.TokenBody)).Token;
            }
            using (var client = b.Client())
            {
                await client.PostAsync("/v1/cluster/join", new TokenBody(token), ControlJsonContext.Default.TokenBody, ControlJsonContext.Default.StatusBody);
            }
            foreach (var daemon in new[] { a, b })
            {
                await daemon.WaitForAsync(s => s.Leader is not null && s.Members.Count(m => m.Status == "alive") == 2 && s.Voters == 1 && s.Learners == 1,
                    TimeSpan.FromSeconds(30), "two daemons in separate namespaces in one cluster via mDNS");
            }
            Assert.Contains($"mDNS: found peer", b.Log + a.Log, StringComparison.Ordinal);
            var peers = (await b.StatusAsync()).Members;
            Assert.Contains(peers, p => p.Address == $"{addressA}:7410" && p.Site == "site-a");
        }
        finally
        {
            if (a is not null) await a.DisposeAsync();
            if (b is not null) await b.DisposeAsync();
            foreach (string ns in new[] { nsA, nsB })
            {
                try
                {
                    await Ip("netns", "del", ns);
                }
                catch (InvalidOperationException)
                {
                }
            }
        }
    }
}
