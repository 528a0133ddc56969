using P2PReplay.Linux.Abi;
using static P2PReplay.Linux.Syscalls.ArgKind;

namespace P2PReplay.Linux.Syscalls;

/// <summary>Clocks and sleeps. Host time reaches the guest only here, through <see cref="IHostEnvironment"/>.</summary>
public static class TimeSyscalls
{
    private const long NanosPerSecond = 1_000_000_000;
    private const int ClockRealtime = 0, ClockMonotonic = 1, ClockProcessCputime = 2, ClockThreadCputime = 3,
        ClockMonotonicRaw = 4, ClockRealtimeCoarse = 5, ClockMonotonicCoarse = 6, ClockBoottime = 7, ClockTai = 11;
    private const int TimerAbstime = 1;

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(228, "clock_gettime", SupportLevel.Full, ClockGettime, [Int, Pointer]),
        new(229, "clock_getres", SupportLevel.Full, ClockGetres, [Int, Pointer]),
        new(96, "gettimeofday", SupportLevel.Full, Gettimeofday, [Pointer, Pointer]),
        new(201, "time", SupportLevel.Full, Time, [Pointer]),
        new(35, "nanosleep", SupportLevel.Full, Nanosleep, [Pointer, Pointer]),
        new(230, "clock_nanosleep", SupportLevel.Full, ClockNanosleep, [Int, Hex, Pointer, Pointer]),
        new(100, "times", SupportLevel.Partial, Times, [Pointer]),
    ];

    /// <summary>Reads a clock in nanoseconds, or null for an unknown clock id.</summary>
    public static long? Read(LinuxProcess p, int clock) => clock switch
    {
        ClockRealtime or ClockRealtimeCoarse or ClockTai => p.Host.RealtimeNanoseconds(),
        ClockMonotonic or ClockMonotonicRaw or ClockMonotonicCoarse or ClockBoottime => p.Host.MonotonicNanoseconds(),
        // CPU-time clocks: the guest's wall time since start is an honest upper bound and needs no extra host input.
        ClockProcessCputime or ClockThreadCputime => p.Host.MonotonicNanoseconds(),
        _ => null,
    };

    private static bool WriteTimespec(LinuxProcess p, ulong address, long nanoseconds) =>
        p.Memory.TryWrite(address, nanoseconds / NanosPerSecond) && p.Memory.TryWrite(address + 8, nanoseconds % NanosPerSecond);

    /// <summary>A struct timespec in nanoseconds: null when unreadable (EFAULT), -1 when invalid (EINVAL).</summary>
    public static long? ReadTimespec(LinuxProcess p, ulong address)
    {
        if (!p.Memory.TryRead(address, out long seconds) || !p.Memory.TryRead(address + 8, out long nanos)) return null;
        if (seconds < 0 || nanos < 0 || nanos >= NanosPerSecond) return -1;
        return seconds > long.MaxValue / NanosPerSecond - 1 ? long.MaxValue : seconds * NanosPerSecond + nanos;
    }

    private static long ClockGettime(LinuxProcess p, in SyscallArgs a)
    {
        if (Read(p, a.Int(0)) is not { } now) return -Errno.EINVAL;
        return WriteTimespec(p, a.A1, now) ? 0 : -Errno.EFAULT;
    }

    private static long ClockGetres(LinuxProcess p, in SyscallArgs a)
    {
        if (Read(p, a.Int(0)) is null) return -Errno.EINVAL;
        return a.A1 == 0 || WriteTimespec(p, a.A1, 1) ? 0 : -Errno.EFAULT;
    }

    private static long Gettimeofday(LinuxProcess p, in SyscallArgs a)
    {
        if (a.A0 != 0)
        {
            long now = p.Host.RealtimeNanoseconds();
            if (!p.Memory.TryWrite(a.A0, now / NanosPerSecond) || !p.Memory.TryWrite(a.A0 + 8, now % NanosPerSecond / 1000)) return -Errno.EFAULT;
        }
        if (a.A1 != 0)
        {
            Span<byte> utcZone = stackalloc byte[8];
            utcZone.Clear();
            if (!p.Memory.TryWrite(a.A1, utcZone)) return -Errno.EFAULT;
        }
        return 0;
    }

    private static long Time(LinuxProcess p, in SyscallArgs a)
    {
        long seconds = p.Host.RealtimeNanoseconds() / NanosPerSecond;
        if (a.A0 != 0 && !p.Memory.TryWrite(a.A0, seconds)) return -Errno.EFAULT;
        return seconds;
    }

    private static long Nanosleep(LinuxProcess p, in SyscallArgs a)
    {
        if (ReadTimespec(p, a.A0) is not { } duration) return -Errno.EFAULT;
        if (duration < 0) return -Errno.EINVAL;
        p.Host.Sleep(duration);
        return 0;
    }

    private static long ClockNanosleep(LinuxProcess p, in SyscallArgs a)
    {
        int clock = a.Int(0);
        if (clock is ClockThreadCputime || Read(p, clock) is not { } now) return -Errno.EINVAL;
        if (ReadTimespec(p, a.A2) is not { } request) return -Errno.EFAULT;
        if (request < 0) return -Errno.EINVAL;
        long duration = (a.Int(1) & TimerAbstime) != 0 ? request - now : request;
        p.Host.Sleep(duration);
        return 0;
    }

    private static long Times(LinuxProcess p, in SyscallArgs a)
    {
        // struct tms: CPU times read as zero (they would leak host timing); the result is clock ticks (100 Hz) since start.
        if (a.A0 != 0)
        {
            Span<byte> zero = stackalloc byte[32];
            zero.Clear();
            if (!p.Memory.TryWrite(a.A0, zero)) return -Errno.EFAULT;
        }
        return p.Host.MonotonicNanoseconds() / (NanosPerSecond / 100);
    }
}
