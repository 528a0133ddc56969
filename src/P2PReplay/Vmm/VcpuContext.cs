using System.Runtime.CompilerServices;
using P2PReplay.Guest;
using P2PReplay.Kvm;
using P2PReplay.Linux;

namespace P2PReplay.Vmm;

/// <summary>The personality's view of a vCPU: registers and segment bases in the kvm_run sync-regs page, no copies.</summary>
internal sealed class VcpuContext(KvmVcpu vcpu) : ICpuContext
{
    public ulong FsBase
    {
        get => vcpu.SyncSregs.Fs.Base;
        set
        {
            vcpu.SyncSregs.Fs.Base = value;
            vcpu.DirtyRegs |= KvmRunLayout.SyncX86Sregs;
        }
    }

    public ulong GsBase
    {
        get => vcpu.SyncSregs.Gs.Base;
        set
        {
            vcpu.SyncSregs.Gs.Base = value;
            vcpu.DirtyRegs |= KvmRunLayout.SyncX86Sregs;
        }
    }

    // KvmRegs and UserRegisters have the same layout (18 quadwords in kvm_regs order); a unit test checks it.
    public ref UserRegisters Registers => ref Unsafe.As<KvmRegs, UserRegisters>(ref vcpu.SyncRegs);

    public UserRegisters ResumeRegisters
    {
        get
        {
            var registers = Registers;
            if (registers.Rip == GuestLayout.SyscallStubAddress + 2)
            {
                // The return from the syscall is still pending (VMX/SVM: the stub's SYSRETQ; any host: the exit that
                // ended the guest). Apply it as SYSRET would (SDM 2B) so digests are the same on every hypervisor.
                registers.Rip = registers.Rcx;
                registers.Rflags = X86.SysretFlags(registers.R11);
            }
            return registers;
        }
    }
}
