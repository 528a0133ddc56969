using System.Text;
using P2PReplay.Linux.Abi;
using static P2PReplay.Linux.Syscalls.ArgKind;

namespace P2PReplay.Linux.Syscalls;

/// <summary>Process identity, exit, limits, TLS (arch_prctl), uname and the not-yet-supported process creation calls.</summary>
public static class ProcessSyscalls
{
    private const int ArchSetGs = 0x1001, ArchSetFs = 0x1002, ArchGetFs = 0x1003, ArchGetGs = 0x1004;
    private const int PrSetPdeathsig = 1, PrGetDumpable = 3, PrSetDumpable = 4, PrSetName = 15, PrGetName = 16;
    private const ulong RlimInfinity = ulong.MaxValue;

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(60, "exit", SupportLevel.Full, Exit, [Int]),
        new(231, "exit_group", SupportLevel.Full, Exit, [Int]),
        new(39, "getpid", SupportLevel.Full, static (_, in _) => LinuxProcess.ProcessId, []),
        new(110, "getppid", SupportLevel.Full, static (_, in _) => LinuxProcess.ParentProcessId, []),
        new(186, "gettid", SupportLevel.Full, static (p, in _) => p.ThreadId, []),
        new(102, "getuid", SupportLevel.Full, static (_, in _) => LinuxProcess.UserId, []),
        new(107, "geteuid", SupportLevel.Full, static (_, in _) => LinuxProcess.UserId, []),
        new(104, "getgid", SupportLevel.Full, static (_, in _) => LinuxProcess.GroupId, []),
        new(108, "getegid", SupportLevel.Full, static (_, in _) => LinuxProcess.GroupId, []),
        new(105, "setuid", SupportLevel.Full, static (_, in a) => a.Int(0) == LinuxProcess.UserId ? 0 : -Errno.EPERM, [Int]),
        new(106, "setgid", SupportLevel.Full, static (_, in a) => a.Int(0) == LinuxProcess.GroupId ? 0 : -Errno.EPERM, [Int]),
        new(118, "getresuid", SupportLevel.Full, static (p, in a) => WriteIds(p, a, LinuxProcess.UserId), [Pointer, Pointer, Pointer]),
        new(120, "getresgid", SupportLevel.Full, static (p, in a) => WriteIds(p, a, LinuxProcess.GroupId), [Pointer, Pointer, Pointer]),
        new(115, "getgroups", SupportLevel.Full, static (_, in _) => 0, [Int, Pointer]),
        new(111, "getpgrp", SupportLevel.Full, static (_, in _) => LinuxProcess.ProcessId, []),
        new(121, "getpgid", SupportLevel.Full, static (_, in a) => a.Int(0) is 0 or LinuxProcess.ProcessId ? LinuxProcess.ProcessId : -Errno.ESRCH, [Int]),
        new(124, "getsid", SupportLevel.Full, static (_, in a) => a.Int(0) is 0 or LinuxProcess.ProcessId ? LinuxProcess.ProcessId : -Errno.ESRCH, [Int]),
        new(109, "setpgid", SupportLevel.Partial, static (_, in a) => a.Int(0) is 0 or LinuxProcess.ProcessId ? 0 : -Errno.ESRCH, [Int, Int]),
        new(112, "setsid", SupportLevel.Partial, static (_, in _) => -Errno.EPERM, []),
        new(218, "set_tid_address", SupportLevel.Full, SetTidAddress, [Pointer]),
        new(273, "set_robust_list", SupportLevel.NoOp, static (_, in a) => a.A1 == 24 ? 0 : -Errno.EINVAL, [Pointer, Size]),
        new(158, "arch_prctl", SupportLevel.Partial, ArchPrctl, [Hex, Pointer]),
        new(157, "prctl", SupportLevel.Partial, Prctl, [Int, Hex, Hex, Hex, Hex]),
        new(63, "uname", SupportLevel.Full, Uname, [Pointer]),
        new(97, "getrlimit", SupportLevel.Full, static (p, in a) => GetLimit(p, a.Int(0), a.A1), [Int, Pointer]),
        new(160, "setrlimit", SupportLevel.NoOp, static (_, in a) => (uint)a.Int(0) < 16 ? 0 : -Errno.EINVAL, [Int, Pointer]),
        new(302, "prlimit64", SupportLevel.Partial, Prlimit64, [Int, Int, Pointer, Pointer]),
        new(98, "getrusage", SupportLevel.Partial, GetRusage, [Int, Pointer]),
        new(204, "sched_getaffinity", SupportLevel.Full, SchedGetAffinity, [Int, Size, Pointer]),
        new(24, "sched_yield", SupportLevel.Full, static (_, in _) => 0, []),
        new(61, "wait4", SupportLevel.Full, static (_, in _) => -Errno.ECHILD, [Int, Pointer, Hex, Pointer]),
        new(247, "waitid", SupportLevel.Full, static (_, in _) => -Errno.ECHILD, [Int, Int, Pointer, Hex]),
        new(202, "futex", SupportLevel.Partial, Futex, [Pointer, Int, Int, Pointer, Pointer, Int]),
        NotYet(56, "clone"), NotYet(57, "fork"), NotYet(58, "vfork"), NotYet(59, "execve"),
        NotYet(322, "execveat"), NotYet(435, "clone3"),
    ];

    /// <summary>Process creation is explicitly unsupported for now; the user is told once why a shell pipeline fails.</summary>
    private static SyscallDescriptor NotYet(int number, string name) => new(number, name, SupportLevel.Unsupported, (p, in _) =>
    {
        p.NoticeOnce("fork", $"p2preplay: {name}() is not supported yet: this VM runs a single process, so pipelines and external commands from a shell fail");
        return -Errno.ENOSYS;
    }, [Hex, Hex, Hex, Hex, Hex]);

    private static long Exit(LinuxProcess p, in SyscallArgs a)
    {
        p.Terminate(ExitStatus.Exited(a.Int(0)));
        return 0;
    }

    private static long WriteIds(LinuxProcess p, in SyscallArgs a, int id)
    {
        for (int i = 0; i < 3; i++)
        {
            if (!p.Memory.TryWrite(a[i], id)) return -Errno.EFAULT;
        }
        return 0;
    }

    private static long SetTidAddress(LinuxProcess p, in SyscallArgs a)
    {
        p.ClearChildTid = a.A0;
        return p.ThreadId;
    }

    private static long ArchPrctl(LinuxProcess p, in SyscallArgs a)
    {
        switch (a.Int(0))
        {
            case ArchSetFs:
                if (!IsCanonicalUser(a.A1)) return -Errno.EPERM;
                p.Cpu.FsBase = a.A1;
                return 0;
            case ArchSetGs:
                if (!IsCanonicalUser(a.A1)) return -Errno.EPERM;
                p.Cpu.GsBase = a.A1;
                return 0;
            case ArchGetFs:
                return p.Memory.TryWrite(a.A1, p.Cpu.FsBase) ? 0 : -Errno.EFAULT;
            case ArchGetGs:
                return p.Memory.TryWrite(a.A1, p.Cpu.GsBase) ? 0 : -Errno.EFAULT;
            default:
                return -Errno.EINVAL;
        }
    }

    // FS/GS bases must be canonical user addresses (Linux refuses others with EPERM); a bad one would make KVM_RUN fail.
    private static bool IsCanonicalUser(ulong address) => address < 0x0000_8000_0000_0000UL;

    private static long Prctl(LinuxProcess p, in SyscallArgs a)
    {
        switch (a.Int(0))
        {
            case PrSetName:
                if (p.Memory.TryReadCString(a.A1, 4096, out byte[] name) != 0) return -Errno.EFAULT;
                p.Name = name.AsSpan(0, Math.Min(name.Length, 15)).ToArray();
                return 0;
            case PrGetName:
                Span<byte> buffer = stackalloc byte[16];
                buffer.Clear();
                p.Name.CopyTo(buffer);
                return p.Memory.TryWrite(a.A1, buffer) ? 0 : -Errno.EFAULT;
            case PrSetPdeathsig:
            case PrSetDumpable:
                return 0;
            case PrGetDumpable:
                return 1;
            default:
                return -Errno.EINVAL;
        }
    }

    private static long Uname(LinuxProcess p, in SyscallArgs a)
    {
        Span<byte> buffer = stackalloc byte[6 * 65];
        buffer.Clear();
        string[] fields = ["Linux", "p2preplay", "6.1.0-p2preplay", "#1 SMP PREEMPT_DYNAMIC p2preplay", "x86_64", "(none)"];
        for (int i = 0; i < fields.Length; i++) Encoding.ASCII.GetBytes(fields[i], buffer.Slice(i * 65, 64));
        return p.Memory.TryWrite(a.A0, buffer) ? 0 : -Errno.EFAULT;
    }

    /// <summary>Fixed limits, so that nothing about the host's ulimits reaches the guest.</summary>
    public static (ulong Soft, ulong Hard) Limit(int resource) => resource switch
    {
        3 => (8 << 20, RlimInfinity),    // RLIMIT_STACK
        4 => (0, RlimInfinity),          // RLIMIT_CORE
        7 => (1024, 4096),               // RLIMIT_NOFILE
        8 => (8 << 20, 8 << 20),         // RLIMIT_MEMLOCK
        6 => (1024, 1024),               // RLIMIT_NPROC
        11 => (1024, 1024),              // RLIMIT_SIGPENDING
        12 => (819200, 819200),          // RLIMIT_MSGQUEUE
        _ => (RlimInfinity, RlimInfinity),
    };

    private static long GetLimit(LinuxProcess p, int resource, ulong address)
    {
        if ((uint)resource >= 16) return -Errno.EINVAL;
        var (soft, hard) = Limit(resource);
        return p.Memory.TryWrite(address, soft) && p.Memory.TryWrite(address + 8, hard) ? 0 : -Errno.EFAULT;
    }

    private static long Prlimit64(LinuxProcess p, in SyscallArgs a)
    {
        if (a.Int(0) is not (0 or LinuxProcess.ProcessId)) return -Errno.ESRCH;
        int resource = a.Int(1);
        if ((uint)resource >= 16) return -Errno.EINVAL;
        if (a.A2 != 0 && !p.Memory.IsAccessible(a.A2, 16, Memory.Protection.Read)) return -Errno.EFAULT;
        return a.A3 != 0 ? GetLimit(p, resource, a.A3) : 0;
    }

    private static long GetRusage(LinuxProcess p, in SyscallArgs a)
    {
        // struct rusage is 144 bytes; usage figures would leak host timing, so they read as zero.
        Span<byte> zero = stackalloc byte[144];
        zero.Clear();
        return p.Memory.TryWrite(a.A1, zero) ? 0 : -Errno.EFAULT;
    }

    private static long SchedGetAffinity(LinuxProcess p, in SyscallArgs a)
    {
        if (a.Int(0) is not (0 or LinuxProcess.ProcessId)) return -Errno.ESRCH;
        if (a.A1 < 8 || (a.A1 & 7) != 0) return -Errno.EINVAL;
        return p.Memory.TryWrite(a.A2, 1UL) ? 8 : -Errno.EFAULT;
    }

    private static long Futex(LinuxProcess p, in SyscallArgs a)
    {
        const int Wait = 0, Wake = 1, WaitBitset = 9, WakeBitset = 10;
        int op = a.Int(1) & 0x7f;
        switch (op)
        {
            case Wake:
            case WakeBitset:
                return 0; // a single thread has no waiters
            case Wait:
            case WaitBitset:
                if (!p.Memory.TryRead(a.A0, out uint current)) return -Errno.EFAULT;
                if (current != (uint)a.Int(2)) return -Errno.EAGAIN;
                // No other thread exists to wake us: waiting would never end.
                p.NoticeOnce("futex", "p2preplay: futex wait in a single-threaded guest would block forever; returning ETIMEDOUT");
                return -Errno.ETIMEDOUT;
            default:
                return -Errno.ENOSYS;
        }
    }
}
