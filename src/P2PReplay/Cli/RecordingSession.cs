using P2PReplay.Kvm;
using P2PReplay.Replay;
using P2PReplay.Vmm;

namespace P2PReplay.Cli;

/// <summary>Glue between the VMM and the recorder/replayer (which know nothing of KVM).</summary>
internal static class RecordingSession
{
    /// <summary>Runs the recorder's or replayer's after-exit step on the vCPU thread.</summary>
    public sealed class ExitHook(Action<long, bool> afterExit) : IExitObserver
    {
        public void AfterExit(long exit, bool guestExited) => afterExit(exit, guestExited);
    }

    /// <summary>Connects a recorder to a VM: the process, the exit counter, and the after-exit digests.</summary>
    public static void Attach(MicroVm vm, Recorder recorder)
    {
        recorder.Process = vm.Process;
        recorder.CurrentExit = () => vm.Runner.Exits;
        vm.Runner.Observer = new ExitHook(recorder.AfterExit);
    }

    /// <summary>Connects a replayer to a VM: the process, the exit counter, and the after-exit checks.</summary>
    public static void Attach(MicroVm vm, Replayer replayer)
    {
        replayer.Process = vm.Process;
        replayer.CurrentExit = () => vm.Runner.Exits;
        vm.Runner.Observer = new ExitHook(replayer.AfterExit);
    }

    public static IReadOnlyList<CpuidLeaf> ToLeaves(KvmCpuidEntry2[] entries) =>
        entries.Select(e => new CpuidLeaf(e.Function, e.Index, e.Flags, e.Eax, e.Ebx, e.Ecx, e.Edx)).ToList();

    public static KvmCpuidEntry2[] FromLeaves(IReadOnlyList<CpuidLeaf> leaves) =>
        leaves.Select(l => new KvmCpuidEntry2 { Function = l.Function, Index = l.Index, Flags = l.Flags, Eax = l.Eax, Ebx = l.Ebx, Ecx = l.Ecx, Edx = l.Edx }).ToArray();

    public static LogHeader BuildHeader(VmConfiguration config, KvmCpuidEntry2[] cpuid, HostCpu host, long digestInterval, bool rateLimited) => new()
    {
        ProgramPath = config.ProgramGuestPath,
        ProgramSha256 = ImageHash.Of(config.Program),
        ImageRoot = config.ImageRoot,
        ImageSha256 = ImageHash.Compute(config.ImageRoot),
        MemorySize = config.MemorySize,
        Arguments = config.Arguments,
        Environment = config.Environment,
        Cpuid = ToLeaves(cpuid),
        HostCpu = host.ToString(),
        TimeStampCounterTrapped = host.CanTrapTimeStampCounter,
        DigestInterval = digestInterval,
        DigestRateLimited = rateLimited,
        DigestMemory = config.TrackGuestWrites ? DigestMemory.Written : DigestMemory.Mapped,
    };
}
