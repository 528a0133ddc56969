using System.Runtime.InteropServices;
using P2PReplay.Interop;

namespace P2PReplay.Kvm;

/// <summary>A vCPU: its fd and the shared kvm_run page, with KVM_CAP_SYNC_REGS views of regs and sregs.</summary>
internal sealed unsafe class KvmVcpu : IDisposable
{
    private readonly SafeFileDescriptor _fd;
    private readonly SafeMappedMemory _run;

    internal KvmVcpu(int id, SafeFileDescriptor fd, SafeMappedMemory run)
    {
        Id = id;
        _fd = fd;
        _run = run;
    }

    public int Id { get; }

    private byte* Run => _run.Pointer;

    public KvmExitReason ExitReason => (KvmExitReason)(*(uint*)(Run + KvmRunLayout.ExitReason));

    /// <summary>kvm_run.s.regs: valid after an exit when sync regs are enabled; written back on KVM_RUN if marked dirty.</summary>
    public ref KvmRegs SyncRegs => ref *(KvmRegs*)(Run + KvmRunLayout.SyncRegs);

    public ref KvmSregs SyncSregs => ref *(KvmSregs*)(Run + KvmRunLayout.SyncSregs);

    public byte* RunPage => Run;

    public ref ulong ValidRegs => ref *(ulong*)(Run + KvmRunLayout.ValidRegs);

    public ref ulong DirtyRegs => ref *(ulong*)(Run + KvmRunLayout.DirtyRegs);

    public ref byte ImmediateExit => ref *(Run + KvmRunLayout.ImmediateExit);

    public ushort IoPort => *(ushort*)(Run + KvmRunLayout.IoPort);

    public uint InternalSuberror => *(uint*)(Run + KvmRunLayout.InternalSuberror);

    public ulong FailEntryReason => *(ulong*)(Run + KvmRunLayout.FailEntryReason);

    /// <summary>KVM_RUN. Returns 0 on an exit, or the errno (EINTR when kicked by a signal).</summary>
    public int RunOnce()
    {
        if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.Run, 0) == 0) return 0;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Libc.EINTR || errno == Libc.EAGAIN) return errno;
        throw new KvmException($"KVM_RUN failed: {new System.ComponentModel.Win32Exception(errno).Message} (errno {errno})");
    }

    /// <summary>KVM_SET_SIGNAL_MASK: the signal mask in force while the thread is inside KVM_RUN (64-bit kernel sigset).</summary>
    public void SetSignalMask(ulong mask)
    {
        byte* buffer = stackalloc byte[4 + 8];
        // SAFETY: buffer is struct kvm_signal_mask { u32 len; u8 sigset[8]; }.
        *(uint*)buffer = 8;
        *(ulong*)(buffer + 4) = mask;
        if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.SetSignalMask, buffer) < 0) throw KvmException.FromErrno("KVM_SET_SIGNAL_MASK");
    }

    public KvmRegs GetRegs()
    {
        KvmRegs regs;
        // SAFETY: regs is a stack struct of the exact kernel layout (144 bytes).
        if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.GetRegs, &regs) < 0) throw KvmException.FromErrno("KVM_GET_REGS");
        return regs;
    }

    public void SetRegs(in KvmRegs regs)
    {
        fixed (KvmRegs* p = &regs)
        {
            // SAFETY: p points at a pinned kvm_regs for the call.
            if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.SetRegs, p) < 0) throw KvmException.FromErrno("KVM_SET_REGS");
        }
    }

    public KvmSregs GetSregs()
    {
        KvmSregs sregs;
        // SAFETY: sregs is a stack struct of the exact kernel layout (312 bytes).
        if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.GetSregs, &sregs) < 0) throw KvmException.FromErrno("KVM_GET_SREGS");
        return sregs;
    }

    public void SetSregs(in KvmSregs sregs)
    {
        fixed (KvmSregs* p = &sregs)
        {
            // SAFETY: p points at a pinned kvm_sregs for the call.
            if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.SetSregs, p) < 0) throw KvmException.FromErrno("KVM_SET_SREGS");
        }
    }

    public void SetMsrs(ReadOnlySpan<KvmMsrEntry> entries)
    {
        int size = 8 + entries.Length * sizeof(KvmMsrEntry);
        byte* buffer = stackalloc byte[size];
        // SAFETY: buffer is a kvm_msrs header followed by exactly entries.Length entries.
        *(uint*)buffer = (uint)entries.Length;
        *(uint*)(buffer + 4) = 0;
        entries.CopyTo(new Span<KvmMsrEntry>(buffer + 8, entries.Length));
        int set = NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.SetMsrs, buffer);
        if (set != entries.Length) throw new KvmException($"KVM_SET_MSRS set {set} of {entries.Length} MSRs (first refused: 0x{entries[Math.Max(set, 0)].Index:X})");
    }

    public void SetCpuid(ReadOnlySpan<KvmCpuidEntry2> entries)
    {
        int size = 8 + entries.Length * sizeof(KvmCpuidEntry2);
        byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)size);
        try
        {
            // SAFETY: buffer is a kvm_cpuid2 header followed by exactly entries.Length entries.
            *(uint*)buffer = (uint)entries.Length;
            entries.CopyTo(new Span<KvmCpuidEntry2>(buffer + 8, entries.Length));
            if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.SetCpuid2, buffer) < 0) throw KvmException.FromErrno("KVM_SET_CPUID2");
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    /// <summary>KVM_SET_XCRS with XCR0 only. Returns false where the host refuses it.</summary>
    public bool TrySetXcr0(ulong value)
    {
        byte* buffer = stackalloc byte[392];
        new Span<byte>(buffer, 392).Clear();
        // SAFETY: buffer is a zeroed struct kvm_xcrs (392 bytes): nr_xcrs=1, xcrs[0] = {xcr 0, value}.
        *(uint*)buffer = 1;
        *(uint*)(buffer + 8) = 0;
        *(ulong*)(buffer + 16) = value;
        return NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.SetXcrs, buffer) == 0;
    }

    /// <summary>Size of struct kvm_xsave (the legacy 4 KiB layout) and of struct kvm_fpu.</summary>
    public const int XsaveSize = 4096, FpuSize = 416;

    /// <summary>
    /// The x87/SSE/AVX state: KVM_GET_XSAVE (4096 bytes), or KVM_GET_FPU (416 bytes: x87 and SSE only) where the host
    /// lacks XSAVE support. The length of the result says which.
    /// </summary>
    public byte[] GetFloatingPointState()
    {
        var state = new byte[XsaveSize];
        fixed (byte* p = state)
        {
            // SAFETY: p points at a pinned 4096-byte buffer, the size of struct kvm_xsave.
            if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.GetXsave, p) == 0) return state;
            // SAFETY: the same buffer holds the 416-byte struct kvm_fpu.
            if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.GetFpu, p) < 0) throw KvmException.FromErrno("KVM_GET_FPU");
        }
        return state.AsSpan(0, FpuSize).ToArray();
    }

    /// <summary>Puts back what <see cref="GetFloatingPointState"/> returned (KVM_SET_XSAVE or KVM_SET_FPU by its length).</summary>
    public void SetFloatingPointState(ReadOnlySpan<byte> state)
    {
        if (state.Length is not (XsaveSize or FpuSize)) throw new ArgumentException($"floating-point state of {state.Length} bytes", nameof(state));
        fixed (byte* p = state)
        {
            // SAFETY: p points at a pinned buffer of exactly the size the request names (kvm_xsave or kvm_fpu).
            int result = NativeIoctl.Ioctl(_fd.Fd, state.Length == XsaveSize ? KvmIoctls.SetXsave : KvmIoctls.SetFpu, p);
            if (result < 0) throw KvmException.FromErrno(state.Length == XsaveSize ? "KVM_SET_XSAVE" : "KVM_SET_FPU");
        }
    }

    public void Dispose()
    {
        _run.Dispose();
        _fd.Dispose();
    }
}
