using P2PReplay.Cli;
using P2PReplay.Replay;
using P2PReplay.Tests.Fakes;
using P2PReplay.Vmm;

namespace P2PReplay.Tests.Support;

/// <summary>In-process record and replay of a program, for differential and tamper tests.</summary>
public static class Recordings
{
    public sealed record Recorded(byte[] Log, RunResult Run);

    public static Recorded Record(string program, IReadOnlyList<string> args, string? root = null, IReadOnlyList<string>? env = null,
        byte[]? stdin = null, long digestInterval = 64, int seed = 1, bool writtenPages = false)
    {
        var argv = new List<string> { program };
        argv.AddRange(args);
        var (cpuid, hostCpu) = MicroVm.ProbeHost();
        var config = new VmConfiguration(File.ReadAllBytes(program), program, argv, env ?? [], root, VmConfiguration.DefaultMemorySize) { Cpuid = cpuid, TrackGuestWrites = writtenPages, HostCpu = hostCpu.CanTrapTimeStampCounter ? null : 0 };
        var log = new MemoryStream();
        var host = new FakeHost(stdin, seed) { ClockStep = 1000 };
        RunResult result;
        using (var recorder = new Recorder(log, RecordingSession.BuildHeader(config, cpuid, hostCpu, digestInterval, rateLimited: false)))
        {
            using var vm = MicroVm.Create(config, new RecordingHost(host, recorder), null);
            RecordingSession.Attach(vm, recorder);
            var status = vm.Run() ?? throw new InvalidOperationException("paused");
            result = new RunResult(host.StdoutText, host.StderrText, status.ShellStatus, status);
        }
        return new Recorded(log.ToArray(), result);
    }

    public sealed record Replayed(RunResult Run, long Exits, long Events, long Digests);

    /// <summary>Replays in-process; divergence, truncation and format errors propagate as their exceptions.</summary>
    public static Replayed Replay(byte[] log, string program)
    {
        using var replayer = new Replayer(new MemoryStream(log));
        var h = replayer.Header;
        var config = new VmConfiguration(File.ReadAllBytes(program), h.ProgramPath, h.Arguments, h.Environment, h.ImageRoot, h.MemorySize)
        {
            Cpuid = RecordingSession.FromLeaves(h.Cpuid),
            TrackGuestWrites = h.DigestMemory == DigestMemory.Written,
            HostCpu = h.PinnedHostCpu,
        };
        var output = new FakeHost();
        using var vm = MicroVm.Create(config, new ReplayingHost(replayer, output), null);
        RecordingSession.Attach(vm, replayer);
        var status = vm.Run() ?? throw new InvalidOperationException("paused");
        return new Replayed(new RunResult(output.StdoutText, output.StderrText, status.ShellStatus, status), vm.Runner.Exits, replayer.Events, replayer.DigestsChecked);
    }
}
