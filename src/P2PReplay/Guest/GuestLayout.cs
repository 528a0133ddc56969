namespace P2PReplay.Guest;

/// <summary>
/// Where the VMM puts its own structures in guest-physical (= guest-virtual) memory. Everything lives in the low
/// 64 KiB that Linux never maps for user programs (vm.mmap_min_addr); page 0 stays unmapped so NULL faults.
/// Page tables live past the user range, in physical memory no virtual address maps.
/// </summary>
internal static class GuestLayout
{
    public const ulong PageSize = 4096;
    public const ulong GdtAddress = 0x1000;
    public const ulong IdtAddress = 0x2000;
    public const ulong TssAddress = 0x3000;          // 0x68-byte TSS + 8 KiB I/O bitmap + terminator: 0x3000-0x5069
    public const ulong KernelStackBottom = 0x6000;
    public const ulong KernelStackTop = 0x8000;     // TSS.RSP0: exception frames from CPL3 land here
    public const ulong SyscallStubAddress = 0x8000; // IA32_LSTAR; user-readable (kvm_pvm runs the stub at CPL3)
    public const ulong ExceptionStubsAddress = 0x9000; // one 16-byte stub per vector
    public const int ExceptionStubStride = 16;
    public const ulong KernelAreaEnd = 0xA000;

    /// <summary>Port the syscall stub writes to; allowed at CPL3 by the TSS I/O bitmap.</summary>
    public const ushort SyscallPort = 0x80;

    /// <summary>Port the exception stubs write to (at CPL0).</summary>
    public const ushort ExceptionPort = 0x81;

    /// <summary>KVM_SET_TSS_ADDR: three pages of guest-physical space outside all memory slots (Intel needs it).</summary>
    public const ulong KvmTssAddress = 0xFFFB_D000;

    /// <summary>The largest guest memory supported: the page-table pool and KVM's TSS pages must stay below 4 GiB.</summary>
    public const ulong MaxMemory = 3UL << 30;

    /// <summary>Pages of page tables needed to map [0, userEnd) with 4 KiB pages, plus the PML4 and PDPT.</summary>
    public static ulong PageTablePoolSize(ulong userEnd)
    {
        ulong pts = (userEnd + (2UL << 20) - 1) >> 21;
        ulong pds = (userEnd + (1UL << 30) - 1) >> 30;
        return (pts + pds + 2) * PageSize;
    }
}
