namespace P2PReplay.Kvm;

/// <summary>ioctl request numbers from linux/kvm.h (_IO/_IOR/_IOW/_IOWR with type 0xAE).</summary>
internal static class KvmIoctls
{
    private const uint IocNone = 0, IocWrite = 1, IocRead = 2;

    private static nuint Ioc(uint dir, uint nr, uint size) => (nuint)((dir << 30) | (size << 16) | (0xAEu << 8) | nr);

    public static readonly nuint GetApiVersion = Ioc(IocNone, 0x00, 0);
    public static readonly nuint CreateVm = Ioc(IocNone, 0x01, 0);
    public static readonly nuint CheckExtension = Ioc(IocNone, 0x03, 0);
    public static readonly nuint GetVcpuMmapSize = Ioc(IocNone, 0x04, 0);
    public static readonly nuint GetSupportedCpuid = Ioc(IocRead | IocWrite, 0x05, 8);
    public static readonly nuint CreateVcpu = Ioc(IocNone, 0x41, 0);
    public static readonly nuint SetUserMemoryRegion = Ioc(IocWrite, 0x46, 32);
    public static readonly nuint GetDirtyLog = Ioc(IocWrite, 0x42, 16);
    public static readonly nuint SetTssAddr = Ioc(IocNone, 0x47, 0);
    public static readonly nuint Run = Ioc(IocNone, 0x80, 0);
    public static readonly nuint GetRegs = Ioc(IocRead, 0x81, 144);
    public static readonly nuint SetRegs = Ioc(IocWrite, 0x82, 144);
    public static readonly nuint GetSregs = Ioc(IocRead, 0x83, 312);
    public static readonly nuint SetSregs = Ioc(IocWrite, 0x84, 312);
    public static readonly nuint SetMsrs = Ioc(IocWrite, 0x89, 8);
    public static readonly nuint SetCpuid2 = Ioc(IocWrite, 0x90, 8);
    public static readonly nuint SetSignalMask = Ioc(IocWrite, 0x8B, 4);
    public static readonly nuint EnableCap = Ioc(IocWrite, 0xA3, 104);
    public static readonly nuint SetXcrs = Ioc(IocWrite, 0xA7, 392);
    public static readonly nuint GetFpu = Ioc(IocRead, 0x8C, 416);
    public static readonly nuint SetFpu = Ioc(IocWrite, 0x8D, 416);
    public static readonly nuint GetXsave = Ioc(IocRead, 0xA4, 4096);
    public static readonly nuint SetXsave = Ioc(IocWrite, 0xA5, 4096);
}

/// <summary>KVM_CAP_* numbers used here.</summary>
internal static class KvmCaps
{
    public const int UserMemory = 3;
    public const int SetTssAddr = 4;
    public const int ExtCpuid = 7;
    public const int SyncRegs = 74;
    public const int Xcrs = 56;
}

/// <summary>kvm_run.exit_reason values.</summary>
internal enum KvmExitReason : uint
{
    Unknown = 0,
    Exception = 1,
    Io = 2,
    Hypercall = 3,
    Debug = 4,
    Hlt = 5,
    Mmio = 6,
    IrqWindowOpen = 7,
    Shutdown = 8,
    FailEntry = 9,
    Intr = 10,
    InternalError = 17,
    SystemEvent = 24,
}
