namespace P2PReplay.Cli;

/// <summary>Entry point of the admin CLI: picks the subcommand.</summary>
internal static class CommandLine
{
    public const string Usage = """
        usage: p2preplay <command> [options]

        commands:
          run [--root DIR] [--memory SIZE] [--env K=V]... [--trace-syscalls] [--record LOG [--digest-every N] [--digest-memory mapped|written]]
              [--expose GUESTPORT:HOSTPORT]... -- PROGRAM [ARGS...]
                  run a static x86-64 Linux program in a fresh KVM microVM (and record it); --expose serves a guest
                  TCP listening port on 127.0.0.1:HOSTPORT
          replay [--root DIR] [--program PATH] [--quiet] LOG
                  re-execute a recording in a fresh VM and verify it
          log inspect LOG
                  print a recording's header and events
          daemon [--config FILE] [--data-dir DIR] [--socket PATH] [--listen IP:PORT] [--seed HOST:PORT]... [--site LABEL] [--mdns on|off]
                  the service: joins the cluster and serves the control socket (normally started by systemd)
          status [--json] [--socket PATH]
                  this node, the Raft leader and term, the members
          peers [--json] [--socket PATH]
                  the cluster's members: id, address, site, state, last seen, round-trip time
          vm create NAME [--replicas N] -- PROGRAM [ARGS...] | vm list | vm show NAME | vm logs NAME | vm stop NAME
                  replicated VMs: the primary records, replicas replay its log live
          cluster init | cluster join TOKEN [--socket PATH]
                  create a cluster (prints a join token) or join one
          help    show this text
        """;

    public static int Run(string[] args)
    {
        if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
        {
            Console.Out.Write(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            return args[0] switch
            {
                "run" => RunCommand.Execute(args.AsSpan(1)),
                "replay" => ReplayCommand.Execute(args.AsSpan(1)),
                "log" => LogCommand.Execute(args.AsSpan(1)),
                "daemon" => DaemonCommand.Execute(args.AsSpan(1)),
                "status" => AdminCommands.Status(args.AsSpan(1)),
                "peers" => AdminCommands.Peers(args.AsSpan(1)),
                "cluster" => AdminCommands.Cluster(args.AsSpan(1)),
                "vm" => VmCommands.Execute(args.AsSpan(1)),
                _ => throw new UsageException($"unknown command '{args[0]}'"),
            };
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"p2preplay: {e.Message}");
            Console.Error.Write(Usage);
            return 2;
        }
    }
}

/// <summary>The command line is wrong; the message says how.</summary>
internal sealed class UsageException(string message) : Exception(message);
