using P2PReplay.Guest;
using P2PReplay.Interop;
using P2PReplay.Kvm;
using P2PReplay.Linux;
using P2PReplay.Linux.Syscalls;

namespace P2PReplay.Vmm;

/// <summary>Called on the vCPU thread after every handled exit (record/replay hangs its digests and checks here).</summary>
internal interface IExitObserver
{
    /// <param name="exit">the exit's ordinal (1-based)</param>
    /// <param name="guestExited">the guest ended at this exit</param>
    void AfterExit(long exit, bool guestExited);
}

/// <summary>The run loop's states: other threads may only ask for Paused; Exited is final.</summary>
internal enum VcpuState
{
    Paused,
    Running,
    Exited,
}

/// <summary>
/// The vCPU run loop as an explicit state machine. Each KVM_RUN returns at a VM exit: a syscall (the LSTAR stub's
/// OUT), a CPU exception (an IDT stub's OUT) or a VM-level failure. Registers travel through KVM_CAP_SYNC_REGS, so an
/// exit costs one ioctl.
/// </summary>
internal sealed class VcpuRunner
{
    private readonly KvmVcpu _vcpu;
    private readonly LinuxProcess _process;
    private readonly SyscallDispatcher _dispatcher;
    private readonly VcpuContext _context;
    private volatile bool _pauseRequested;
    private nuint _thread;
    private volatile bool _inRunLoop;

    public VcpuRunner(KvmVcpu vcpu, LinuxProcess process, SyscallDispatcher dispatcher)
    {
        _vcpu = vcpu;
        _process = process;
        _dispatcher = dispatcher;
        _context = new VcpuContext(vcpu);
        process.Cpu = _context;
    }

    public VcpuState State { get; private set; } = VcpuState.Paused;

    /// <summary>Pin the calling thread to this host CPU while Run runs (see <see cref="VmConfiguration.HostCpu"/>).</summary>
    public int? HostCpu { get; init; }

    public IExitObserver? Observer { get; set; }

    /// <summary>VM exits handled so far.</summary>
    public long Exits { get; private set; }

    /// <summary>Set when a syscall arrived at CPL3 (kvm_pvm): the host cannot trap rdtsc or CPUID.</summary>
    public bool SawUserModeSyscall { get; private set; }

    /// <summary>Snapshots: a restored VM continues the exit count (digests and log events are tied to it).</summary>
    internal void RestoreCounters(long exits, bool sawUserModeSyscall)
    {
        Exits = exits;
        SawUserModeSyscall = sawUserModeSyscall;
    }

    /// <summary>Runs until the guest exits or another thread asks for a pause; returns the new state.</summary>
    public VcpuState Run()
    {
        if (State == VcpuState.Exited) return State;
        PrepareThread();
        // Pinned for this Run only: the caller's thread (a pool thread, a test's) gets its CPUs back afterwards.
        ulong[]? previousCpus = HostCpu is int cpu ? ThreadAffinity.Get() : null;
        if (HostCpu is int pin && !ThreadAffinity.PinTo(pin)) previousCpus = null;
        State = VcpuState.Running;
        _vcpu.ValidRegs = KvmRunLayout.SyncX86Regs | KvmRunLayout.SyncX86Sregs;
        _inRunLoop = true;
        try
        {
            while (State == VcpuState.Running)
            {
                if (_pauseRequested)
                {
                    _pauseRequested = false;
                    State = VcpuState.Paused;
                    break;
                }
                int error = _vcpu.RunOnce();
                if (error != 0)
                {
                    // Kicked (EINTR) or asked to leave before entry (immediate_exit): consume the kick, then look at the request.
                    KickSignal.DrainPending();
                    _vcpu.ImmediateExit = 0;
                    continue;
                }
                Exits++;
                HandleExit();
                if (_process.HasExited) State = VcpuState.Exited;
                Observer?.AfterExit(Exits, _process.HasExited);
            }
        }
        finally
        {
            _inRunLoop = false;
            if (previousCpus is not null) ThreadAffinity.Set(previousCpus);
        }
        return State;
    }

    /// <summary>
    /// Asks the run loop to stop at the next exit, from any thread: immediate_exit covers a vCPU about to enter
    /// KVM_RUN, the kick signal one that is inside it.
    /// </summary>
    public void RequestPause()
    {
        _pauseRequested = true;
        _vcpu.ImmediateExit = 1;
        if (_inRunLoop && _thread != 0) KickSignal.Send(_thread);
    }

    private void PrepareThread()
    {
        nuint current = KickSignal.CurrentThread();
        if (current == _thread) return;
        ulong previousMask = KickSignal.BlockInCurrentThread();
        _vcpu.SetSignalMask(previousMask & ~KickSignal.Bit);
        _thread = current;
    }

    private void HandleExit()
    {
        switch (_vcpu.ExitReason)
        {
            case KvmExitReason.Io when _vcpu.IoPort == GuestLayout.SyscallPort:
                HandleSyscall();
                break;
            case KvmExitReason.Io when _vcpu.IoPort == GuestLayout.ExceptionPort:
                _process.LastSyscall = -1;
                HandleException();
                break;
            case KvmExitReason.Io:
            case KvmExitReason.Mmio:
                // Only VMM stubs perform I/O; anything else means the guest ran kernel code it should not reach.
                KillGuest(Signals.SIGSEGV, null, $"unexpected {_vcpu.ExitReason} exit (port 0x{_vcpu.IoPort:x})");
                break;
            case KvmExitReason.Shutdown:
                KillGuest(Signals.SIGSEGV, null, "triple fault (the VM shut down)");
                break;
            case KvmExitReason.Hlt:
                KillGuest(Signals.SIGSEGV, null, "the vCPU halted");
                break;
            case KvmExitReason.InternalError:
                KillGuest(Signals.SIGILL, null, $"KVM internal error, suberror {_vcpu.InternalSuberror} (the guest did something KVM cannot emulate)");
                break;
            case KvmExitReason.FailEntry:
                throw new KvmException($"VM entry failed, hardware reason 0x{_vcpu.FailEntryReason:x}: the VMM set up an invalid vCPU state");
            default:
                throw new KvmException($"unexpected VM exit reason {(uint)_vcpu.ExitReason}");
        }
    }

    private void HandleSyscall()
    {
        ref var regs = ref _vcpu.SyncRegs;
        // SYSCALL put the return address in RCX and RFLAGS in R11 (SDM 2B, SYSCALL). The stub's OUT has executed.
        if (regs.Rip != GuestLayout.SyscallStubAddress + 2)
        {
            // The guest jumped into the stub or executed OUT itself: a privileged instruction in user mode.
            KillGuest(Signals.SIGSEGV, 0, $"privileged port I/O at rip 0x{regs.Rip:x}");
            return;
        }
        // Like Linux (do_syscall_64), the number is the low 32 bits of RAX.
        var args = new SyscallArgs(unchecked((int)regs.Rax),
            regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9);
        long result = _dispatcher.Dispatch(_process, args);
        if (_process.HasExited) return;
        regs.Rax = (ulong)result;
        if (_vcpu.SyncSregs.Cs.Dpl == 3)
        {
            // kvm_pvm: SYSCALL did not enter CPL0, so SYSRETQ would #GP; return to the caller ourselves.
            SawUserModeSyscall = true;
            regs.Rip = regs.Rcx;
            regs.Rflags = X86.SysretFlags(regs.R11);
        }
        _vcpu.DirtyRegs |= KvmRunLayout.SyncX86Regs;
    }

    private void HandleException()
    {
        ref var regs = ref _vcpu.SyncRegs;
        int vector = Stubs.VectorAt(regs.Rip);
        if (vector < 0)
        {
            KillGuest(Signals.SIGSEGV, null, $"exception exit from unexpected rip 0x{regs.Rip:x}");
            return;
        }
        // The CPU pushed [error code], RIP, CS, RFLAGS, RSP, SS on the kernel stack (SDM 3A §6.14.2).
        ulong frame = regs.Rsp;
        bool hasError = X86.HasErrorCode(vector);
        var frameBytes = ReadKernelFrame(frame, hasError ? 6 : 5);
        if (frameBytes is null)
        {
            KillGuest(Signals.SIGSEGV, null, $"exception {vector} with an unreadable kernel stack");
            return;
        }
        int i = hasError ? 1 : 0;
        ulong errorCode = hasError ? frameBytes[0] : 0;
        ulong faultRip = frameBytes[i], faultCs = frameBytes[i + 1], faultFlags = frameBytes[i + 2], faultRsp = frameBytes[i + 3];
        if ((faultCs & 3) != 3)
        {
            KillGuest(Signals.SIGSEGV, null, $"exception {vector} in VMM stub code at rip 0x{faultRip:x}");
            return;
        }
        if (vector == X86.VectorGeneralProtection && errorCode == 0 && TryEmulateTimeStampCounter(faultRip, out ulong nextRip, out ulong tsc, out bool withAux))
        {
            ResumeUser(nextRip, faultRsp, faultFlags);
            regs.Rax = tsc & 0xFFFFFFFF;
            regs.Rdx = tsc >> 32;
            if (withAux) regs.Rcx = 0; // IA32_TSC_AUX: CPU 0
            return;
        }
        switch (vector)
        {
            case X86.VectorPageFault:
                KillGuest(Signals.SIGSEGV, _vcpu.SyncSregs.Cr2, PageFaultDetail(errorCode), faultRip);
                break;
            case X86.VectorDivide:
            case X86.VectorFpu:
            case X86.VectorSimd:
            case X86.VectorDeviceNotAvailable:
                KillGuest(Signals.SIGFPE, faultRip, $"exception {vector}", faultRip);
                break;
            case X86.VectorInvalidOpcode:
                KillGuest(Signals.SIGILL, faultRip, "invalid opcode", faultRip);
                break;
            case X86.VectorDebug:
            case X86.VectorBreakpoint:
                KillGuest(Signals.SIGTRAP, faultRip, "breakpoint", faultRip);
                break;
            case X86.VectorAlignment:
                KillGuest(Signals.SIGBUS, faultRip, "alignment check", faultRip);
                break;
            default:
                KillGuest(Signals.SIGSEGV, 0, $"exception {vector}, error code 0x{errorCode:x}", faultRip);
                break;
        }
    }

    private ulong[]? ReadKernelFrame(ulong address, int words)
    {
        if (address < GuestLayout.KernelStackBottom || address + (ulong)words * 8 > GuestLayout.KernelStackTop) return null;
        var result = new ulong[words];
        var raw = _process.Memory.UncheckedReadOnlySpan(address, words * 8);
        for (int w = 0; w < words; w++) result[w] = BitConverter.ToUInt64(raw[(w * 8)..]);
        return result;
    }

    /// <summary>CR4.TSD makes RDTSC (0F 31) and RDTSCP (0F 01 F9) #GP at CPL3; the VMM answers with the monotonic clock in ns.</summary>
    private bool TryEmulateTimeStampCounter(ulong rip, out ulong nextRip, out ulong tsc, out bool withAux)
    {
        nextRip = tsc = 0;
        withAux = false;
        Span<byte> code = stackalloc byte[3];
        if (!_process.Memory.TryRead(rip, code[..2])) return false;
        if (code[0] == 0x0F && code[1] == 0x31)
        {
            nextRip = rip + 2;
        }
        else if (code[0] == 0x0F && code[1] == 0x01 && _process.Memory.TryRead(rip, code) && code[2] == 0xF9)
        {
            nextRip = rip + 3;
            withAux = true;
        }
        else
        {
            return false;
        }
        tsc = (ulong)_process.Host.MonotonicNanoseconds();
        return true;
    }

    /// <summary>Leaves the exception stub and returns to user code: RIP/RSP/RFLAGS and the user CS/SS (KVM-NOTES: both are needed).</summary>
    private void ResumeUser(ulong rip, ulong rsp, ulong rflags)
    {
        ref var regs = ref _vcpu.SyncRegs;
        regs.Rip = rip;
        regs.Rsp = rsp;
        regs.Rflags = rflags | X86.RflagsReserved;
        ref var sregs = ref _vcpu.SyncSregs;
        sregs.Cs = Segments.UserCode;
        sregs.Ss = Segments.UserData(Descriptors.UserDataSelector);
        _vcpu.DirtyRegs |= KvmRunLayout.SyncX86Regs | KvmRunLayout.SyncX86Sregs;
    }

    private static string PageFaultDetail(ulong errorCode)
    {
        // #PF error code (SDM 3A §4.7): P bit 0, W/R bit 1, U/S bit 2, I/D bit 4.
        string access = (errorCode & 0x10) != 0 ? "execute" : (errorCode & 2) != 0 ? "write" : "read";
        string why = (errorCode & 1) != 0 ? "protection violation" : "address not mapped";
        return $"{access} fault, {why}";
    }

    private void KillGuest(int signal, ulong? faultAddress, string detail, ulong? rip = null)
    {
        _process.Terminate(ExitStatus.Killed(signal, faultAddress, rip ?? _vcpu.SyncRegs.Rip, detail));
        State = VcpuState.Exited;
    }
}
