using System.Globalization;
using System.Text;
using System.Text.Json;
using P2PReplay.Control;

namespace P2PReplay.Cli;

/// <summary>`status`, `peers` and `cluster init|join`: clients of the local daemon's control API.</summary>
internal static class AdminCommands
{
    /// <summary>The daemon could not be reached or refused the request.</summary>
    public const int DaemonError = 1;

    private sealed record Options(string Socket, bool Json, List<string> Positional);

    private static Options ParseOptions(ReadOnlySpan<string> args, string usage)
    {
        string socket = ControlClient.SocketFromEnvironment();
        bool json = false;
        var positional = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--json":
                    json = true;
                    break;
                case "--socket":
                    if (++i >= args.Length) throw new UsageException($"--socket needs a path\n{usage}");
                    socket = args[i];
                    break;
                case var flag when flag.StartsWith("--socket=", StringComparison.Ordinal):
                    socket = flag["--socket=".Length..];
                    break;
                case "--no-seeds":
                    positional.Add(args[i]);
                    break;
                case var other when other.StartsWith('-'):
                    throw new UsageException($"unknown option '{other}'\n{usage}");
                default:
                    positional.Add(args[i]);
                    break;
            }
        }
        return new Options(socket, json, positional);
    }

    private static int Call(Options options, Func<ControlClient, Task<string>> call)
    {
        using var client = new ControlClient(options.Socket);
        try
        {
            Console.Out.Write(call(client).GetAwaiter().GetResult());
            return 0;
        }
        catch (ControlException e)
        {
            Console.Error.WriteLine($"p2preplay: {e.Message}");
            return DaemonError;
        }
        catch (TaskCanceledException)
        {
            Console.Error.WriteLine($"p2preplay: the daemon at {options.Socket} did not answer in time");
            return DaemonError;
        }
    }

    public static int Status(ReadOnlySpan<string> args)
    {
        const string usage = "usage: p2preplay status [--json] [--socket PATH]";
        var options = ParseOptions(args, usage);
        if (options.Positional.Count != 0) throw new UsageException(usage);
        return Call(options, async client =>
        {
            var status = await client.GetAsync("/v1/status", ControlJsonContext.Default.StatusBody).ConfigureAwait(false);
            return options.Json ? JsonSerializer.Serialize(status, ControlJsonContext.Default.StatusBody) + "\n" : FormatStatus(status);
        });
    }

    public static int Peers(ReadOnlySpan<string> args)
    {
        const string usage = "usage: p2preplay peers [--json] [--socket PATH]";
        var options = ParseOptions(args, usage);
        if (options.Positional.Count != 0) throw new UsageException(usage);
        return Call(options, async client =>
        {
            var peers = await client.GetAsync("/v1/peers", ControlJsonContext.Default.ListPeerBody).ConfigureAwait(false);
            return options.Json ? JsonSerializer.Serialize(peers, ControlJsonContext.Default.ListPeerBody) + "\n" : FormatPeers(peers);
        });
    }

    public static int Cluster(ReadOnlySpan<string> args)
    {
        const string usage = "usage: p2preplay cluster init [--no-seeds] [--json] [--socket PATH]\n       p2preplay cluster join TOKEN [--json] [--socket PATH]";
        var options = ParseOptions(args, usage);
        return options.Positional switch
        {
            ["init"] or ["init", "--no-seeds"] => Call(options, async client =>
            {
                var body = new InitBody(IncludeSeeds: options.Positional.Count == 1);
                var token = await client.PostAsync("/v1/cluster/init", body, ControlJsonContext.Default.InitBody, ControlJsonContext.Default.TokenBody).ConfigureAwait(false);
                return options.Json
                    ? JsonSerializer.Serialize(token, ControlJsonContext.Default.TokenBody) + "\n"
                    : $"created a new cluster. On each other node run:\n\n  p2preplay cluster join {token.Token}\n\n";
            }),
            ["join", var token] => Call(options, async client =>
            {
                var status = await client.PostAsync("/v1/cluster/join", new TokenBody(token), ControlJsonContext.Default.TokenBody, ControlJsonContext.Default.StatusBody).ConfigureAwait(false);
                return options.Json ? JsonSerializer.Serialize(status, ControlJsonContext.Default.StatusBody) + "\n" : $"joined: this node ({status.NodeId}) now dials the cluster's seed peers\n";
            }),
            _ => throw new UsageException(usage),
        };
    }

    internal static string FormatStatus(StatusBody status)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"node      {status.NodeId} at {status.Address}, site {status.Site} (p2preplay {status.Version})\n");
        if (!status.InCluster)
        {
            text.Append("cluster   none yet: run `p2preplay cluster init` on one node and `p2preplay cluster join TOKEN` on the others\n");
            return text.ToString();
        }
        text.Append(CultureInfo.InvariantCulture, $"raft      {status.RaftState}, term {status.Term}, commit {status.CommitIndex}, {status.Voters} voters, {status.Learners} learners\n");
        text.Append(CultureInfo.InvariantCulture, $"leader    {status.Leader ?? "(none: election in progress or no quorum)"}\n");
        text.Append(CultureInfo.InvariantCulture, $"members   {status.Members.Count(m => m.Status == "alive")} alive of {status.Members.Count}\n");
        foreach (var member in status.Members)
        {
            text.Append(CultureInfo.InvariantCulture, $"  {member.Id}  {member.Address,-22} {member.Site,-12} {member.Status,-8} {member.Raft}{(member.Self ? " (this node)" : "")}\n");
        }
        return text.ToString();
    }

    internal static string FormatPeers(IReadOnlyList<PeerBody> peers)
    {
        var rows = new List<string[]> { new[] { "ID", "ADDRESS", "SITE", "STATUS", "STATE", "RAFT", "LAST SEEN", "RTT" } };
        foreach (var peer in peers)
        {
            rows.Add([
                peer.Id + (peer.Self ? "*" : ""),
                peer.Address,
                peer.Site,
                peer.Status,
                peer.State,
                peer.Raft,
                peer.Self ? "-" : peer.LastSeenMsAgo is long ago ? FormatAgo(ago) : "never",
                peer.RoundTripMs is double rtt ? string.Create(CultureInfo.InvariantCulture, $"{rtt:0.0} ms") : "-",
            ]);
        }
        int[] widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var text = new StringBuilder();
        foreach (var row in rows)
        {
            text.AppendJoin("  ", row.Select((cell, c) => c == row.Length - 1 ? cell : cell.PadRight(widths[c])));
            text.Append('\n');
        }
        return text.ToString();
    }

    private static string FormatAgo(long milliseconds) => milliseconds switch
    {
        < 1000 => string.Create(CultureInfo.InvariantCulture, $"{milliseconds} ms ago"),
        < 120_000 => string.Create(CultureInfo.InvariantCulture, $"{milliseconds / 1000.0:0.0} s ago"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{milliseconds / 60_000} min ago"),
    };
}
