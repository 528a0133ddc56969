using System.Runtime.InteropServices;
using P2PReplay.Interop;

namespace P2PReplay.Kvm;

/// <summary>The /dev/kvm system handle: capability queries and VM creation.</summary>
internal sealed unsafe class KvmSystem : IDisposable
{
    public const string DevicePath = "/dev/kvm";
    private const int ExpectedApiVersion = 12;

    private readonly SafeFileDescriptor _fd;

    private KvmSystem(SafeFileDescriptor fd) => _fd = fd;

    /// <summary>Overrides the device path (tests use it to simulate a host without KVM).</summary>
    public const string DeviceVariable = "P2PREPLAY_KVM_DEVICE";

    public static KvmSystem Open() => Open(Environment.GetEnvironmentVariable(DeviceVariable) is { Length: > 0 } path ? path : DevicePath);

    public static KvmSystem Open(string path)
    {
        int fd = NativeOpen.Open(path, Libc.O_RDWR | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            string fix = errno switch
            {
                Libc.ENOENT => $"{path} does not exist: KVM is not available. Enable virtualization in the firmware (or nested virtualization on a VM) and load the module: `modprobe kvm_intel` or `modprobe kvm_amd`.",
                Libc.EACCES or Libc.EPERM => $"permission denied on {path}: add your user to the kvm group (`sudo usermod -aG kvm $USER`, then log in again) or run as root.",
                _ => $"cannot open {path}: {new System.ComponentModel.Win32Exception(errno).Message}.",
            };
            throw new KvmException(fix);
        }
        var system = new KvmSystem(new SafeFileDescriptor(fd));
        int version = NativeIoctl.Ioctl(fd, KvmIoctls.GetApiVersion, 0);
        if (version != ExpectedApiVersion)
        {
            system.Dispose();
            throw new KvmException($"{path} reports KVM API version {version}; p2preplay needs version {ExpectedApiVersion}.");
        }
        return system;
    }

    public int CheckExtension(int capability) => NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.CheckExtension, (nuint)capability);

    public int VcpuMmapSize
    {
        get
        {
            int size = NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.GetVcpuMmapSize, 0);
            if (size <= 0) throw KvmException.FromErrno("KVM_GET_VCPU_MMAP_SIZE");
            return size;
        }
    }

    /// <summary>KVM_GET_SUPPORTED_CPUID: every leaf this host's KVM can expose.</summary>
    public KvmCpuidEntry2[] GetSupportedCpuid()
    {
        const int MaxEntries = 256;
        int size = 8 + MaxEntries * sizeof(KvmCpuidEntry2);
        byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)size);
        try
        {
            // SAFETY: buffer holds a kvm_cpuid2 header plus MaxEntries entries, which is what nent announces.
            *(uint*)buffer = MaxEntries;
            if (NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.GetSupportedCpuid, buffer) < 0) throw KvmException.FromErrno("KVM_GET_SUPPORTED_CPUID");
            int count = (int)*(uint*)buffer;
            return new ReadOnlySpan<KvmCpuidEntry2>(buffer + 8, count).ToArray();
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    public KvmVm CreateVm()
    {
        int fd = NativeIoctl.Ioctl(_fd.Fd, KvmIoctls.CreateVm, 0);
        if (fd < 0) throw KvmException.FromErrno("KVM_CREATE_VM");
        return new KvmVm(this, new SafeFileDescriptor(fd));
    }

    public void Dispose() => _fd.Dispose();
}
