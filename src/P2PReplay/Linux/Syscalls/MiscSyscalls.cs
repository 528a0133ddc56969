using P2PReplay.Linux.Abi;
using static P2PReplay.Linux.Syscalls.ArgKind;

namespace P2PReplay.Linux.Syscalls;

/// <summary>getrandom and system information.</summary>
public static class MiscSyscalls
{
    private const int GrndNonblock = 1, GrndRandom = 2, GrndInsecure = 4;
    private const int MaxRandomBytes = (1 << 25) - 1;

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(318, "getrandom", SupportLevel.Full, GetRandom, [Pointer, Size, Hex]),
        new(99, "sysinfo", SupportLevel.Full, Sysinfo, [Pointer]),
        new(309, "getcpu", SupportLevel.Full, GetCpu, [Pointer, Pointer, Pointer]),
    ];

    private static long GetRandom(LinuxProcess p, in SyscallArgs a)
    {
        int flags = a.Int(2);
        if ((flags & ~(GrndNonblock | GrndRandom | GrndInsecure)) != 0 || (flags & (GrndRandom | GrndInsecure)) == (GrndRandom | GrndInsecure))
            return -Errno.EINVAL;
        int length = (int)Math.Min(a.A1, MaxRandomBytes);
        if (!p.Memory.TryGetWritable(a.A0, length, out var buffer)) return -Errno.EFAULT;
        p.Host.GetRandomBytes(buffer);
        return length;
    }

    private static long Sysinfo(LinuxProcess p, in SyscallArgs a)
    {
        // struct sysinfo (112 bytes): uptime, loads[3], totalram, freeram, sharedram, bufferram, totalswap, freeswap,
        // procs (u16), pad, totalhigh, freehigh, mem_unit (u32).
        Span<byte> info = stackalloc byte[112];
        info.Clear();
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(info, p.Host.MonotonicNanoseconds() / 1_000_000_000);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(info[32..], p.Memory.UserEnd);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(info[40..], p.Memory.UserEnd / 2);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(info[80..], 1);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(info[104..], 1);
        return p.Memory.TryWrite(a.A0, info) ? 0 : -Errno.EFAULT;
    }

    private static long GetCpu(LinuxProcess p, in SyscallArgs a)
    {
        if (a.A0 != 0 && !p.Memory.TryWrite(a.A0, 0u)) return -Errno.EFAULT;
        if (a.A1 != 0 && !p.Memory.TryWrite(a.A1, 0u)) return -Errno.EFAULT;
        return 0;
    }
}
