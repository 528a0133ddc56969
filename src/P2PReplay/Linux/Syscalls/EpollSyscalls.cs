using P2PReplay.Linux.Abi;
using P2PReplay.Linux.Memory;
using P2PReplay.Linux.Net;
using static P2PReplay.Linux.Syscalls.ArgKind;

namespace P2PReplay.Linux.Syscalls;

/// <summary>epoll over the process's descriptors (see <see cref="EpollFile"/>); waits take network events like poll.</summary>
public static class EpollSyscalls
{
    private const int CtlAdd = 1, CtlDel = 2, CtlMod = 3;
    private const int EventSize = 12; // struct epoll_event is packed on x86-64

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(213, "epoll_create", SupportLevel.Full, EpollCreate, [Int]),
        new(291, "epoll_create1", SupportLevel.Full, EpollCreate1, [Hex]),
        new(233, "epoll_ctl", SupportLevel.Full, EpollCtl, [Fd, Int, Fd, Pointer]),
        new(232, "epoll_wait", SupportLevel.Full, EpollWait, [Fd, Pointer, Int, Int]),
        new(281, "epoll_pwait", SupportLevel.Full, EpollPwait, [Fd, Pointer, Int, Int, Pointer, Size]),
        new(441, "epoll_pwait2", SupportLevel.Full, EpollPwait2, [Fd, Pointer, Int, Pointer, Pointer, Size]),
    ];

    private static long EpollCreate(LinuxProcess p, in SyscallArgs a) => a.Int(0) <= 0 ? -Errno.EINVAL : Create(p, 0);

    private static long EpollCreate1(LinuxProcess p, in SyscallArgs a) =>
        (a.Int(0) & ~OpenFlags.CloseOnExec) != 0 ? -Errno.EINVAL : Create(p, a.Int(0));

    private static long Create(LinuxProcess p, int flags) =>
        p.Files.Add(new EpollFile(p.Network.NextInodePublic(), 0), (flags & OpenFlags.CloseOnExec) != 0);

    private static long EpollCtl(LinuxProcess p, in SyscallArgs a)
    {
        int epfd = a.Int(0), op = a.Int(1), fd = a.Int(2);
        var epollFile = p.Files.Get(epfd);
        var target = p.Files.Get(fd);
        if (epollFile is null || target is null) return -Errno.EBADF;
        if (epollFile is not EpollFile epoll || fd == epfd || target is EpollFile) return -Errno.EINVAL;
        uint events = 0;
        ulong data = 0;
        if (op is CtlAdd or CtlMod)
        {
            if (!p.Memory.TryRead(a.A3, out events) || !p.Memory.TryRead(a.A3 + 4, out data)) return -Errno.EFAULT;
        }
        var entry = epoll.Find(fd, target);
        switch (op)
        {
            case CtlAdd:
                if (entry is not null) return -Errno.EEXIST;
                epoll.Interest.Add(new EpollFile.Entry(fd, target, events, data));
                return 0;
            case CtlMod:
                if (entry is null) return -Errno.ENOENT;
                if ((events & EpollFile.EpollExclusive) != 0) return -Errno.EINVAL;
                entry.Events = events;
                entry.Data = data;
                entry.Disarmed = false;
                entry.LastEvents = 0;
                entry.LastGeneration = -1;
                return 0;
            case CtlDel:
                if (entry is null) return -Errno.ENOENT;
                epoll.Interest.Remove(entry);
                return 0;
            default:
                return -Errno.EINVAL;
        }
    }

    private static long EpollWait(LinuxProcess p, in SyscallArgs a) =>
        Wait(p, a.Int(0), a.A1, a.Int(2), a.Int(3) < 0 ? null : a.Int(3) * 1_000_000L);

    private static long EpollPwait(LinuxProcess p, in SyscallArgs a) => EpollWait(p, a); // the signal mask: no signals arrive during a wait

    private static long EpollPwait2(LinuxProcess p, in SyscallArgs a)
    {
        long? timeout = null;
        if (a.A3 != 0)
        {
            switch (TimeSyscalls.ReadTimespec(p, a.A3))
            {
                case null: return -Errno.EFAULT;
                case < 0: return -Errno.EINVAL;
                case var ns: timeout = ns; break;
            }
        }
        return Wait(p, a.Int(0), a.A1, a.Int(2), timeout);
    }

    private static long Wait(LinuxProcess p, int epfd, ulong events, int max, long? timeoutNs)
    {
        if (max <= 0 || max > int.MaxValue / EventSize) return -Errno.EINVAL;
        if (!p.Memory.IsAccessible(events, (ulong)max * EventSize, Protection.Write)) return -Errno.EFAULT;
        var file = p.Files.Get(epfd);
        if (file is null) return -Errno.EBADF;
        if (file is not EpollFile epoll) return -Errno.EINVAL;
        List<(ulong Data, uint Events)> ready = [];
        bool any = PollSyscalls.WaitReady(p, () => (ready = epoll.Ready(p, max)).Count > 0, timeoutNs);
        if (!any) return 0;
        for (int i = 0; i < ready.Count; i++)
        {
            ulong at = events + (ulong)(i * EventSize);
            p.Memory.TryWrite(at, ready[i].Events);
            p.Memory.TryWrite(at + 4, ready[i].Data);
        }
        return ready.Count;
    }
}
