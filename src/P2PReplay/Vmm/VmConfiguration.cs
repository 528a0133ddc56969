namespace P2PReplay.Vmm;

/// <summary>Everything that defines a VM run: the program, its arguments and environment, the image and the memory size.</summary>
internal sealed record VmConfiguration(
    byte[] Program,
    string ProgramGuestPath,
    IReadOnlyList<string> Arguments,
    IReadOnlyList<string> Environment,
    string? ImageRoot,
    ulong MemorySize)
{
    /// <summary>The CPUID the guest sees; null: this host's baseline (a replay passes the recorded one).</summary>
    public Kvm.KvmCpuidEntry2[]? Cpuid { get; init; }

    /// <summary>Log the pages the guest writes (KVM dirty log), for digests of written pages only.</summary>
    public bool TrackGuestWrites { get; init; }

    /// <summary>
    /// Run the vCPU thread on this host CPU only (null: wherever the kernel puts it). On hosts that cannot trap CPUID
    /// (kvm_pvm) a guest that executes cpuid reads the host CPU's own values (CPUID.01H:EBX[31:24] initial APIC ID
    /// differs per CPU; glibc keeps it in memory), so a recording and its replay on this machine must use the same CPU.
    /// </summary>
    public int? HostCpu { get; init; }

    public const ulong DefaultMemorySize = 512UL << 20;
    public const ulong MinimumMemorySize = 16UL << 20;
}
