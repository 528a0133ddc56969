using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using P2PReplay.Cluster;
using P2PReplay.Control;
using P2PReplay.Daemon;

namespace P2PReplay.Cli;

/// <summary>`p2preplay daemon`: the service. Reads its config, joins the cluster fabric, serves the control socket.</summary>
internal static partial class DaemonCommand
{
    public const string Usage = """
        usage: p2preplay daemon [--config FILE] [--data-dir DIR] [--socket PATH] [--listen IP:PORT] [--advertise HOST:PORT]
                                [--site LABEL] [--seed HOST:PORT]... [--mdns on|off] [--tick-ms N] [--expose-address IP] [--checkpoint-every-kib N] [--verbose]
        """;

    public static int Execute(ReadOnlySpan<string> args)
    {
        DaemonConfig config;
        bool verbose;
        try
        {
            (config, verbose) = ParseArguments(args);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"p2preplay daemon: {e.Message}");
            return 2;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"p2preplay daemon: cannot read the config file: {e.Message}");
            return 2;
        }

        using var loggers = LoggerFactory.Create(builder =>
        {
            builder.SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information);
            // Under systemd the journal stamps each line; elsewhere (tests, a terminal) the log carries its own time.
            bool underJournal = Environment.GetEnvironmentVariable("JOURNAL_STREAM") is { Length: > 0 };
            builder.AddSystemdConsole(options =>
            {
                options.TimestampFormat = underJournal ? null : "yyyy-MM-ddTHH:mm:ss.fff ";
                options.UseUtcTimestamp = true;
            });
        });
        var logger = loggers.CreateLogger("p2preplay.daemon");
        try
        {
            return RunAsync(config, loggers, logger).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SocketException or ClusterException or InvalidDataException)
        {
            LogStartFailed(logger, e.Message);
            return 1;
        }
    }

    internal static (DaemonConfig Config, bool Verbose) ParseArguments(ReadOnlySpan<string> arguments)
    {
        string[] args = arguments.ToArray();
        string? configFile = null;
        var overrides = new List<(string Key, string Value)>();
        var seeds = new List<string>();
        bool verbose = false;
        for (int i = 0; i < args.Length; i++)
        {
            string flag = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new ConfigException($"{flag} needs a value\n{Usage}");
            switch (flag)
            {
                case "--config": configFile = Value(); break;
                case "--data-dir": overrides.Add(("data_dir", Value())); break;
                case "--socket": overrides.Add(("control_socket", Value())); break;
                case "--listen": overrides.Add(("listen", Value())); break;
                case "--advertise": overrides.Add(("advertise", Value())); break;
                case "--site": overrides.Add(("site", Value())); break;
                case "--seed": seeds.Add(DaemonConfig.ValidateHostPort("--seed", Value())); break;
                case "--mdns": overrides.Add(("mdns", Value())); break;
                case "--tick-ms": overrides.Add(("tick_ms", Value())); break;
                case "--expose-address": overrides.Add(("expose_address", Value())); break;
                case "--checkpoint-every-kib": overrides.Add(("checkpoint_every_kib", Value())); break;
                case "--verbose": verbose = true; break;
                default: throw new ConfigException($"unknown option '{flag}'\n{Usage}");
            }
        }

        var config = new DaemonConfig();
        if (configFile is not null)
        {
            config = DaemonConfig.Parse(File.ReadAllText(configFile), configFile);
        }
        else if (File.Exists(DaemonConfig.DefaultConfigFile))
        {
            config = DaemonConfig.Parse(File.ReadAllText(DaemonConfig.DefaultConfigFile), DaemonConfig.DefaultConfigFile);
        }
        foreach (var (key, value) in overrides)
        {
            try
            {
                config = config.With(key, value);
            }
            catch (ConfigException e)
            {
                throw new ConfigException($"--{key.Replace('_', '-')}: {e.Message}");
            }
        }
        if (seeds.Count > 0) config = config with { Seeds = [.. config.Seeds, .. seeds] };
        return (config, verbose);
    }

    private static async Task<int> RunAsync(DaemonConfig config, ILoggerFactory loggers, ILogger logger)
    {
        using var stop = new CancellationTokenSource();
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);

        var notifier = SystemdNotifier.FromEnvironment();
        await using var node = await ClusterNode.StartAsync(config, loggers, TimeProvider.System, stop.Token).ConfigureAwait(false);
        await using var control = ControlServer.Start(config.ControlSocket, config.ControlSocketMode, ControlApi.Build(node), loggers.CreateLogger("p2preplay.control"));
        var status = node.Status();
        LogReady(logger, status.NodeId, config.ControlSocket, status.InCluster ? "member of a cluster" : "not in a cluster yet");
        notifier.Notify($"READY=1\nSTATUS=node {status.NodeId}, control socket {config.ControlSocket}");

        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        notifier.Notify("STOPPING=1");
        LogStopping(logger);
        return 0;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "ready: node {NodeId}, control socket {Socket}, {Membership}")]
    private static partial void LogReady(ILogger logger, string nodeId, string socket, string membership);

    [LoggerMessage(Level = LogLevel.Information, Message = "stopping")]
    private static partial void LogStopping(ILogger logger);

    [LoggerMessage(Level = LogLevel.Critical, Message = "cannot start: {Reason}")]
    private static partial void LogStartFailed(ILogger logger, string reason);
}
