using P2PReplay.Interop;

namespace P2PReplay.Kvm;

/// <summary>A KVM VM file descriptor: memory slots and vCPU creation.</summary>
internal sealed unsafe class KvmVm : IDisposable
{
    private readonly SafeFileDescriptor _fd;

    internal KvmVm(KvmSystem system, SafeFileDescriptor fd)
    {
        System = system;
        _fd = fd;
    }

    public KvmSystem System { get; }

    public void SetTssAddress(ulong address)
    {
        // Required on Intel before the first KVM_RUN: three pages of guest-physical space KVM uses for real-mode emulation.
        if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.SetTssAddr, (nuint)address) < 0) throw KvmException.FromErrno("KVM_SET_TSS_ADDR");
    }

    /// <summary>KVM_MEM_LOG_DIRTY_PAGES: KVM records which pages the guest writes (KVM_GET_DIRTY_LOG).</summary>
    public const uint LogDirtyPages = 1;

    public void SetUserMemoryRegion(uint slot, ulong guestPhysical, ulong size, byte* host, uint flags = 0)
    {
        var region = new KvmUserspaceMemoryRegion
        {
            Slot = slot,
            Flags = flags,
            GuestPhysAddr = guestPhysical,
            MemorySize = size,
            UserspaceAddr = (ulong)host,
        };
        // SAFETY: region lives on the stack for the duration of the call; KVM copies it.
        if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.SetUserMemoryRegion, &region) < 0) throw KvmException.FromErrno("KVM_SET_USER_MEMORY_REGION");
    }

    /// <summary>
    /// KVM_GET_DIRTY_LOG: the slot's pages written by the guest since the last call, one bit per page, and
    /// write-protects them again. The bitmap must cover the whole slot (64-bit words).
    /// </summary>
    public void GetDirtyLog(uint slot, ulong[] bitmap)
    {
        fixed (ulong* bits = bitmap)
        {
            byte* log = stackalloc byte[16];
            // SAFETY: struct kvm_dirty_log { u32 slot; u32 pad; u64 dirty_bitmap; }; bits is pinned for the call and
            // sized by the caller for the whole slot.
            *(uint*)log = slot;
            *(uint*)(log + 4) = 0;
            *(ulong*)(log + 8) = (ulong)bits;
            if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.GetDirtyLog, log) < 0) throw KvmException.FromErrno("KVM_GET_DIRTY_LOG");
        }
    }

    public KvmVcpu CreateVcpu(int id)
    {
        int fd = NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.CreateVcpu, (nuint)id);
        if (fd < 0) throw KvmException.FromErrno("KVM_CREATE_VCPU");
        var vcpuFd = new SafeFileDescriptor(fd);
        var run = SafeMappedMemory.MapShared(vcpuFd, (ulong)System.VcpuMmapSize);
        return new KvmVcpu(id, vcpuFd, run);
    }

    public void Dispose() => _fd.Dispose();
}
