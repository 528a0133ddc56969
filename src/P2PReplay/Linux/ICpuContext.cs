namespace P2PReplay.Linux;

/// <summary>
/// The user-mode register file of the calling thread, in struct kvm_regs order so the VMM can hand over its
/// sync-regs page without copying.
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
public struct UserRegisters
{
    public ulong Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rsp, Rbp;
    public ulong R8, R9, R10, R11, R12, R13, R14, R15;
    public ulong Rip, Rflags;
}

/// <summary>What syscalls may change in the calling vCPU besides the result register.</summary>
public interface ICpuContext
{
    /// <summary>FS segment base (TLS pointer; arch_prctl ARCH_SET_FS).</summary>
    ulong FsBase { get; set; }

    /// <summary>GS segment base (arch_prctl ARCH_SET_GS).</summary>
    ulong GsBase { get; set; }

    /// <summary>The registers as of the syscall; writes take effect when the vCPU resumes.</summary>
    ref UserRegisters Registers { get; }

    /// <summary>
    /// The user-mode registers the guest resumes with after the current exit, the same on every hypervisor
    /// (on VMX/SVM a syscall's return is still pending in the stub's SYSRET; this applies it). For state digests.
    /// </summary>
    UserRegisters ResumeRegisters { get; }
}
