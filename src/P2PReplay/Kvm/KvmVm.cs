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

    public void SetUserMemoryRegion(uint slot, ulong guestPhysical, ulong size, byte* host)
    {
        var region = new KvmUserspaceMemoryRegion
        {
            Slot = slot,
            Flags = 0,
            GuestPhysAddr = guestPhysical,
            MemorySize = size,
            UserspaceAddr = (ulong)host,
        };
        // SAFETY: region lives on the stack for the duration of the call; KVM copies it.
        if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.SetUserMemoryRegion, &region) < 0) throw KvmException.FromErrno("KVM_SET_USER_MEMORY_REGION");
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
