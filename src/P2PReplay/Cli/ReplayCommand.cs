using P2PReplay.Guest;
using P2PReplay.Kvm;
using P2PReplay.Linux;
using P2PReplay.Replay;
using P2PReplay.Replay.Format;
using P2PReplay.Vmm;

namespace P2PReplay.Cli;

/// <summary>`p2preplay replay LOG`: re-executes a recording in a fresh VM and verifies it at every digest.</summary>
internal static class ReplayCommand
{
    public const int Diverged = 1;
    public const int Unreadable = 2;
    public const int Truncated = 4;

    public sealed record Options(string Log, string? Root, string? Program, bool Quiet);

    public static Options Parse(ReadOnlySpan<string> args)
    {
        string? root = null, program = null, log = null;
        bool quiet = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--root": root = Value(args, ref i); break;
                case "--program": program = Value(args, ref i); break;
                case "--quiet": quiet = true; break;
                default:
                    if (args[i].StartsWith('-')) throw new UsageException($"unknown option '{args[i]}' for replay");
                    if (log is not null) throw new UsageException("replay takes one log");
                    log = args[i];
                    break;
            }
        }
        return new Options(log ?? throw new UsageException("replay needs a log: p2preplay replay [--root DIR] [--program PATH] [--quiet] LOG"), root, program, quiet);
    }

    private static string Value(ReadOnlySpan<string> args, ref int i)
    {
        if (i + 1 >= args.Length) throw new UsageException($"option {args[i]} needs a value");
        return args[++i];
    }

    public static int Execute(ReadOnlySpan<string> args)
    {
        var options = Parse(args);
        try
        {
            using var log = new FileStream(options.Log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
            using var replayer = new Replayer(log);
            var header = replayer.Header;
            var config = RecordingSession.RecreateConfiguration(header, options.Root, options.Program);
            var (_, hostCpu) = MicroVm.ProbeHost();
            if (hostCpu.ToString() != header.HostCpu)
                Console.Error.WriteLine($"p2preplay: warning: recorded on {header.HostCpu}, replaying on {hostCpu}: instructions the VMM cannot trap (rdtsc, cpuid) may read differently");
            using var vm = MicroVm.Create(config, new ReplayingHost(replayer, options.Quiet ? null : new RealHostEnvironment()), null);
            RecordingSession.Attach(vm, replayer);
            var status = vm.Run() ?? throw new InvalidOperationException("the replay VM paused");
            Console.Error.WriteLine(
                $"p2preplay: replay verified: {vm.Runner.Exits} exits, {replayer.Events} input events, {replayer.DigestsChecked} digests checked, " +
                $"{log.Length} log bytes in {replayer.ChunksRead} chunks; exit status {status.ShellStatus}");
            return 0;
        }
        catch (ReplayDivergenceException e)
        {
            Console.Error.WriteLine($"p2preplay: replay diverged: {e.Message}");
            return Diverged;
        }
        catch (ReplayTruncatedException e)
        {
            Console.Error.WriteLine($"p2preplay: replay stopped: {e.Message}");
            return Truncated;
        }
        catch (LogFormatException e)
        {
            Console.Error.WriteLine($"p2preplay: {options.Log}: {e.Message}");
            return Unreadable;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ProgramNotFoundException or VmImageException or ElfFormatException or VmConfigurationException)
        {
            Console.Error.WriteLine($"p2preplay: {e.Message}");
            return Unreadable;
        }
        catch (KvmException e)
        {
            Console.Error.WriteLine($"p2preplay: {e.Message}");
            return 3;
        }
    }
}
