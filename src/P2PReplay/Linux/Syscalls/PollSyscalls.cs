using P2PReplay.Linux.Abi;
using static P2PReplay.Linux.Syscalls.ArgKind;

namespace P2PReplay.Linux.Syscalls;

/// <summary>
/// poll, ppoll, select, pselect6 over the process's own descriptors. While the process has sockets, only the network
/// can make something ready: the wait takes host network events (logged inputs) until a descriptor is ready or the
/// timeout passes. Without sockets nothing can become ready in one process, so a wait with nothing ready sleeps out
/// its timeout (time is a host input) and an endless wait returns at once with nothing ready, after saying so once.
/// </summary>
public static class PollSyscalls
{
    private const short PollIn = 0x1, PollPri = 0x2, PollOut = 0x4, PollErr = 0x8, PollHup = 0x10, PollNval = 0x20;
    private const int MaxDescriptors = 1024;

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(7, "poll", SupportLevel.Full, Poll, [Pointer, Int, Int]),
        new(271, "ppoll", SupportLevel.Full, Ppoll, [Pointer, Int, Pointer, Pointer, Size]),
        new(23, "select", SupportLevel.Full, Select, [Int, Pointer, Pointer, Pointer, Pointer]),
        new(270, "pselect6", SupportLevel.Full, Pselect6, [Int, Pointer, Pointer, Pointer, Pointer, Pointer]),
    ];

    private static long Poll(LinuxProcess p, in SyscallArgs a)
    {
        int timeoutMs = a.Int(2);
        return DoPoll(p, a.A0, a.A1, timeoutMs < 0 ? null : timeoutMs * 1_000_000L);
    }

    private static long Ppoll(LinuxProcess p, in SyscallArgs a)
    {
        if (!TryReadTimeout(p, a.A2, out long? timeout, out long error)) return error;
        return DoPoll(p, a.A0, a.A1, timeout);
    }

    private static long DoPoll(LinuxProcess p, ulong address, ulong count, long? timeoutNs)
    {
        if (count > MaxDescriptors) return -Errno.EINVAL;
        int n = (int)count;
        if (!p.Memory.TryGetWritable(address, n * 8, out _)) return n == 0 ? Wait(p, timeoutNs) : -Errno.EFAULT;
        int ready = 0;
        bool Scan()
        {
            ready = 0;
            for (int i = 0; i < n; i++)
            {
                ulong entry = address + (ulong)(i * 8);
                p.Memory.TryRead(entry, out int fd);
                p.Memory.TryRead(entry + 4, out short events);
                short revents = 0;
                if (fd >= 0)
                {
                    var file = p.Files.Get(fd);
                    revents = file is null ? PollNval : (short)(file.PollEvents & (events | PollErr | PollHup));
                }
                p.Memory.TryWrite(entry + 6, revents);
                if (revents != 0) ready++;
            }
            return ready > 0;
        }
        WaitReady(p, Scan, timeoutNs);
        return ready;
    }

    /// <summary>
    /// Waits until <paramref name="check"/> holds or the timeout passes. While the process has sockets, the network can
    /// make descriptors ready: the wait takes host network events (logged inputs); otherwise nothing can change.
    /// </summary>
    internal static bool WaitReady(LinuxProcess p, Func<bool> check, long? timeoutNs)
    {
        if (p.Network.LiveSockets > 0)
        {
            // Look at the network first even when something is ready already: a program that always has a ready
            // descriptor (a writable socket) must still see new connections and bytes.
            p.Network.Pump(0);
            if (check()) return true;
            return timeoutNs != 0 && p.Network.WaitFor(check, timeoutNs);
        }
        if (check()) return true;
        Wait(p, timeoutNs);
        return false;
    }

    /// <summary>An optional struct timespec timeout (NULL: wait without end).</summary>
    private static bool TryReadTimeout(LinuxProcess p, ulong address, out long? timeout, out long error)
    {
        timeout = null;
        error = 0;
        if (address == 0) return true;
        switch (TimeSyscalls.ReadTimespec(p, address))
        {
            case null: error = -Errno.EFAULT; return false;
            case < 0: error = -Errno.EINVAL; return false;
            case var ns: timeout = ns; return true;
        }
    }

    /// <summary>Nothing is ready: sleep out a finite timeout; an endless wait could never end in a single process.</summary>
    private static long Wait(LinuxProcess p, long? timeoutNs)
    {
        if (timeoutNs is { } ns)
        {
            p.Host.Sleep(ns);
            return 0;
        }
        p.NoticeOnce("poll-forever", "p2preplay: the guest waits with no timeout on descriptors nothing can make ready (single process); returning with none ready");
        return 0;
    }

    private static long Select(LinuxProcess p, in SyscallArgs a)
    {
        long? timeout = null;
        if (a.A4 != 0)
        {
            if (!p.Memory.TryRead(a.A4, out long seconds) || !p.Memory.TryRead(a.A4 + 8, out long micros)) return -Errno.EFAULT;
            if (seconds < 0 || micros < 0) return -Errno.EINVAL;
            timeout = seconds > 1_000_000_000 ? long.MaxValue : seconds * 1_000_000_000 + micros % 1_000_000 * 1000;
        }
        long result = DoSelect(p, a.Int(0), a.A1, a.A2, a.A3, timeout);
        // Linux writes back the time left; after a completed wait that is zero.
        if (result >= 0 && a.A4 != 0 && result == 0) p.Memory.TryWrite(a.A4, stackalloc byte[16]);
        return result;
    }

    private static long Pselect6(LinuxProcess p, in SyscallArgs a)
    {
        if (!TryReadTimeout(p, a.A4, out long? timeout, out long error)) return error;
        return DoSelect(p, a.Int(0), a.A1, a.A2, a.A3, timeout);
    }

    private static long DoSelect(LinuxProcess p, int nfds, ulong readSet, ulong writeSet, ulong exceptSet, long? timeoutNs)
    {
        if (nfds < 0 || nfds > MaxDescriptors) return -Errno.EINVAL;
        int bytes = (nfds + 63) / 64 * 8;
        var sets = new[] { readSet, writeSet, exceptSet };
        var input = new byte[3][];
        for (int s = 0; s < 3; s++)
        {
            input[s] = new byte[bytes];
            if (sets[s] != 0 && !p.Memory.TryRead(sets[s], input[s])) return -Errno.EFAULT;
            if (sets[s] != 0 && !p.Memory.IsAccessible(sets[s], (ulong)bytes, Memory.Protection.Write)) return -Errno.EFAULT;
        }
        var output = new[] { new byte[bytes], new byte[bytes], new byte[bytes] };
        int ready = 0;
        bool badFd = false;
        bool Scan()
        {
            ready = 0;
            foreach (var o in output) Array.Clear(o);
            for (int fd = 0; fd < nfds; fd++)
            {
                int bit = 1 << (fd & 7);
                bool wanted = false;
                for (int s = 0; s < 3; s++) wanted |= (input[s][fd >> 3] & bit) != 0;
                if (!wanted) continue;
                var file = p.Files.Get(fd);
                if (file is null) { badFd = true; return true; }
                short events = file.PollEvents;
                if ((input[0][fd >> 3] & bit) != 0 && (events & (PollIn | PollHup | PollErr)) != 0) { output[0][fd >> 3] |= (byte)bit; ready++; }
                if ((input[1][fd >> 3] & bit) != 0 && (events & (PollOut | PollErr)) != 0) { output[1][fd >> 3] |= (byte)bit; ready++; }
                if ((input[2][fd >> 3] & bit) != 0 && (events & PollPri) != 0) { output[2][fd >> 3] |= (byte)bit; ready++; }
            }
            return ready > 0;
        }
        WaitReady(p, Scan, timeoutNs);
        if (badFd) return -Errno.EBADF;
        for (int s = 0; s < 3; s++)
        {
            if (sets[s] != 0) p.Memory.TryWrite(sets[s], output[s]);
        }
        return ready;
    }
}
