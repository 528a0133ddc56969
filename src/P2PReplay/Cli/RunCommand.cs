using P2PReplay.Guest;
using P2PReplay.Kvm;
using P2PReplay.Linux;
using P2PReplay.Replay;
using P2PReplay.Vmm;

namespace P2PReplay.Cli;

/// <summary>`p2preplay run`: one program in one fresh microVM; the exit status is the program's.</summary>
internal static class RunCommand
{
    /// <summary>Default digest interval in exits (see bench/README.md for the measurement behind it).</summary>
    public const long DefaultDigestInterval = 4096;

    public sealed record Options(string Program, IReadOnlyList<string> Arguments, string? Root, ulong Memory,
        IReadOnlyList<string> Environment, bool TraceSyscalls, string? Record = null, long DigestInterval = DefaultDigestInterval,
        string DigestMemory = Replay.DigestMemory.Mapped, bool DigestIntervalGiven = false, IReadOnlyDictionary<int, int>? Expose = null);

    public static Options Parse(ReadOnlySpan<string> args)
    {
        string? root = null;
        ulong memory = VmConfiguration.DefaultMemorySize;
        var environment = new List<string>();
        bool trace = false;
        string? record = null;
        long digestInterval = DefaultDigestInterval;
        string digestMemory = DigestMemory.Mapped;
        bool digestIntervalGiven = false;
        var expose = new Dictionary<int, int>();
        int i = 0;
        for (; i < args.Length; i++)
        {
            string a = args[i];
            if (a == "--") { i++; break; }
            switch (a)
            {
                case "--root": root = OptionValue(args, ref i); break;
                case "--memory": memory = ParseSize(OptionValue(args, ref i)); break;
                case "--env":
                    string kv = OptionValue(args, ref i);
                    if (!kv.Contains('=') || kv.StartsWith('=')) throw new UsageException($"--env takes NAME=VALUE, not '{kv}'");
                    environment.Add(kv);
                    break;
                case "--trace-syscalls": trace = true; break;
                case "--expose":
                    string mapping = OptionValue(args, ref i);
                    string[] parts = mapping.Split(':');
                    if (parts.Length != 2 || !TryPort(parts[0], out int guestPort) || guestPort == 0 || !TryPort(parts[1], out int hostPort))
                        throw new UsageException($"--expose takes GUESTPORT:HOSTPORT (ports 1-65535; host port 0: any free one), not '{mapping}'");
                    expose[guestPort] = hostPort;
                    break;
                case "--record": record = OptionValue(args, ref i); break;
                case "--digest-memory":
                    digestMemory = OptionValue(args, ref i);
                    if (digestMemory is not (DigestMemory.Mapped or DigestMemory.Written))
                        throw new UsageException($"--digest-memory is '{DigestMemory.Mapped}' or '{DigestMemory.Written}', not '{digestMemory}'");
                    break;
                case "--digest-every":
                    string n = OptionValue(args, ref i);
                    if (!long.TryParse(n, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out digestInterval) || digestInterval < 1)
                        throw new UsageException($"--digest-every takes a number of exits, not '{n}'");
                    digestIntervalGiven = true;
                    break;
                default:
                    if (a.StartsWith('-')) throw new UsageException($"unknown option '{a}' for run");
                    goto done; // the program, without a "--" before it
            }
        }
    done:
        if (i >= args.Length) throw new UsageException("run needs a program: p2preplay run [options] -- PROGRAM [ARGS...]");
        return new Options(args[i], args[(i + 1)..].ToArray(), root, memory, environment, trace, record, digestInterval, digestMemory, digestIntervalGiven, expose);
    }

    private static bool TryPort(string text, out int port) =>
        int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out port) && port <= 65535;

    private static string OptionValue(ReadOnlySpan<string> args, ref int i)
    {
        if (i + 1 >= args.Length) throw new UsageException($"option {args[i]} needs a value");
        return args[++i];
    }

    /// <summary>Sizes like 512M, 1G, 64MiB, or a byte count.</summary>
    public static ulong ParseSize(string text)
    {
        string t = text.Trim().ToUpperInvariant();
        ulong multiplier = 1;
        foreach (var (suffix, value) in new[] { ("GIB", 1UL << 30), ("MIB", 1UL << 20), ("KIB", 1UL << 10), ("G", 1UL << 30), ("M", 1UL << 20), ("K", 1UL << 10) })
        {
            if (t.EndsWith(suffix, StringComparison.Ordinal))
            {
                multiplier = value;
                t = t[..^suffix.Length];
                break;
            }
        }
        if (!ulong.TryParse(t, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong n) || n == 0 || n > (1UL << 40) / multiplier)
            throw new UsageException($"'{text}' is not a memory size (examples: 256M, 1G)");
        return n * multiplier;
    }

    public static int Execute(ReadOnlySpan<string> args)
    {
        var options = Parse(args);
        try
        {
            var config = BuildConfiguration(options);
            using var stderrTrace = options.TraceSyscalls ? new StreamWriter(Console.OpenStandardError()) { AutoFlush = true } : null;
            var realHost = new RealHostEnvironment();
            using var network = options.Expose is { Count: > 0 } exposed ? new Linux.Net.RealHostNetwork(exposed) : null;
            if (network is not null) realHost.Network = network;
            // A guest blocked on the network cannot see a pause request: an interrupt also ends the network wait.
            using var onInterrupt = network is null ? null : System.Runtime.InteropServices.PosixSignalRegistration.Create(
                System.Runtime.InteropServices.PosixSignal.SIGINT, _ => network.Interrupt());
            using var onTerminate = network is null ? null : System.Runtime.InteropServices.PosixSignalRegistration.Create(
                System.Runtime.InteropServices.PosixSignal.SIGTERM, _ => network.Interrupt());
            IHostEnvironment host = realHost;
            Recorder? recorder = null;
            FileStream? log = null;
            if (options.Record is { } logPath)
            {
                var (cpuid, hostCpu) = MicroVm.ProbeHost();
                // Where cpuid cannot be trapped the guest reads the CPU it runs on: pin to CPU 0 so that a replay on
                // this machine (pinned the same way, from the header) sees the same values.
                config = config with { Cpuid = cpuid, TrackGuestWrites = options.DigestMemory == DigestMemory.Written, HostCpu = hostCpu.CanTrapTimeStampCounter ? null : 0 };
                if (!hostCpu.CanTrapTimeStampCounter)
                    Console.Error.WriteLine($"p2preplay: note: this host ({hostCpu.KvmModule}) cannot trap rdtsc, cpuid or rdrand: a guest that executes them directly reads the host's values, which the recording does not hold");
                log = OpenLog(logPath);
                recorder = new Recorder(log, RecordingSession.BuildHeader(config, cpuid, hostCpu, options.DigestInterval, rateLimited: !options.DigestIntervalGiven));
                host = new RecordingHost(host, recorder);
            }
            using (log)
            using (recorder)
            {
                using var vm = MicroVm.Create(config, host, stderrTrace);
                if (recorder is not null) RecordingSession.Attach(vm, recorder);
                return RunToEnd(vm, options.TraceSyscalls);
            }
        }
        catch (Exception e) when (e is KvmException or ElfFormatException or VmConfigurationException or ProgramNotFoundException)
        {
            Console.Error.WriteLine($"p2preplay: {e.Message}");
            return e is KvmException ? 3 : 2;
        }
    }

    /// <summary>Runs the VM until the guest ends or the user interrupts it; reports a crash like a shell.</summary>
    public static int RunToEnd(MicroVm vm, bool reportUnsupported)
    {
        int interruptedBy = 0;
        void Interrupt(System.Runtime.InteropServices.PosixSignalContext context)
        {
            context.Cancel = true;
            interruptedBy = context.Signal == System.Runtime.InteropServices.PosixSignal.SIGTERM ? Signals.SIGTERM : Signals.SIGINT;
            vm.Runner.RequestPause();
        }
        using var onInterrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, Interrupt);
        using var onTerminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, Interrupt);
        var status = vm.Run();
        if (status is null)
        {
            Console.Error.WriteLine($"p2preplay: stopped by {Signals.Name(interruptedBy)} after {vm.Runner.Exits} VM exits");
            return 128 + interruptedBy;
        }
        if (status.BySignal) Console.Error.WriteLine(CrashReport(status));
        if (reportUnsupported)
        {
            foreach (var (number, name, calls) in vm.Dispatcher.UnsupportedCalls)
                Console.Error.WriteLine($"p2preplay: unsupported syscall {name} ({number}) called {calls} time(s), returned ENOSYS");
        }
        return status.ShellStatus;
    }

    private static FileStream OpenLog(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ProgramNotFoundException($"cannot write the log {path}: {e.Message}");
        }
    }

    /// <summary>A one-line report like a shell's: "Segmentation fault (SIGSEGV) at address 0x0, rip 0x401745".</summary>
    public static string CrashReport(ExitStatus status)
    {
        string line = $"p2preplay: program killed by {Signals.Name(status.Signal)} ({Signals.Description(status.Signal)})";
        if (status.FaultAddress is { } address) line += $", fault address 0x{address:x}";
        if (status.Rip is { } rip) line += $", rip 0x{rip:x}";
        if (status.Detail is { } detail) line += $": {detail}";
        return line;
    }

    internal static VmConfiguration BuildConfiguration(Options options)
    {
        string? root = options.Root is null ? null : Path.GetFullPath(options.Root);
        if (root is not null && !Directory.Exists(root)) throw new ProgramNotFoundException($"--root {options.Root}: no such directory");
        string guestPath;
        string hostPath;
        if (root is not null && ImagePath(root, options.Program) is { } inImage && File.Exists(inImage))
        {
            hostPath = inImage;
            guestPath = "/" + Path.GetRelativePath(root, inImage).Replace('\\', '/');
        }
        else
        {
            hostPath = Path.GetFullPath(options.Program);
            guestPath = hostPath;
        }
        if (Directory.Exists(hostPath)) throw new ProgramNotFoundException($"{options.Program} is a directory, not a program");
        byte[] program;
        try
        {
            program = File.ReadAllBytes(hostPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ProgramNotFoundException($"cannot read {options.Program}: {e.Message}");
        }
        var argv = new List<string> { options.Program };
        argv.AddRange(options.Arguments);
        return new VmConfiguration(program, guestPath, argv, options.Environment, root, options.Memory);
    }

    private static string? ImagePath(string root, string program)
    {
        string combined = Path.GetFullPath(Path.Combine(root, program.TrimStart('/')));
        return combined.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal) ? combined : null;
    }
}

/// <summary>The program or image named on the command line cannot be read.</summary>
internal sealed class ProgramNotFoundException(string message) : Exception(message);
