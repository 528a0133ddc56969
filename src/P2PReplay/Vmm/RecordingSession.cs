using P2PReplay.Kvm;
using P2PReplay.Replay;

namespace P2PReplay.Vmm;

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
        PinnedHostCpu = config.HostCpu,
        TimeStampCounterTrapped = host.CanTrapTimeStampCounter,
        DigestInterval = digestInterval,
        DigestRateLimited = rateLimited,
        DigestMemory = config.TrackGuestWrites ? DigestMemory.Written : DigestMemory.Mapped,
    };

    /// <summary>The recorded VM configuration, with the program and image checked against the recorded hashes.</summary>
    /// <param name="root">The image directory (default: the recorded one).</param>
    /// <param name="program">The program's host path (default: inside the image, else the recorded path).</param>
    public static VmConfiguration RecreateConfiguration(LogHeader header, string? root, string? program)
    {
        string? chosenRoot = root ?? header.ImageRoot;
        if (header.ImageSha256 == ImageHash.Empty) chosenRoot = root;
        if (chosenRoot is not null && !Directory.Exists(chosenRoot)) throw new VmImageException($"the recorded image {chosenRoot} does not exist; give it with --root DIR");
        string imageHash = ImageHash.Compute(chosenRoot);
        if (imageHash != header.ImageSha256)
            throw new VmImageException($"the image {(chosenRoot ?? "(empty root)")} is not the one recorded (sha256 {imageHash}, recorded {header.ImageSha256}); give the right one with --root DIR");
        string programHost = program
            ?? (chosenRoot is not null && File.Exists(Path.Combine(chosenRoot, header.ProgramPath.TrimStart('/'))) ? Path.Combine(chosenRoot, header.ProgramPath.TrimStart('/')) : header.ProgramPath);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(programHost);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VmImageException($"cannot read the recorded program {programHost}: {e.Message}; give it with --program PATH");
        }
        string programHash = ImageHash.Of(bytes);
        if (programHash != header.ProgramSha256)
            throw new VmImageException($"{programHost} is not the recorded program (sha256 {programHash}, recorded {header.ProgramSha256})");
        return new VmConfiguration(bytes, header.ProgramPath, header.Arguments, header.Environment, chosenRoot, header.MemorySize)
        {
            Cpuid = FromLeaves(header.Cpuid),
            TrackGuestWrites = header.DigestMemory == DigestMemory.Written,
            HostCpu = header.PinnedHostCpu is int cpu && cpu < System.Environment.ProcessorCount ? cpu : null,
        };
    }
}

/// <summary>The program or image a log names is missing or not the recorded one.</summary>
internal sealed class VmImageException(string message) : Exception(message);
