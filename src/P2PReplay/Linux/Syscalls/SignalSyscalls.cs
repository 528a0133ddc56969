using P2PReplay.Linux.Abi;
using static P2PReplay.Linux.Syscalls.ArgKind;

namespace P2PReplay.Linux.Syscalls;

/// <summary>Signal dispositions, masks and signals a process sends itself. Handlers are recorded; delivery to them is not implemented yet.</summary>
public static class SignalSyscalls
{
    private const int SigBlock = 0, SigUnblock = 1, SigSetMask = 2;
    private const ulong Unblockable = (1UL << (Signals.SIGKILL - 1)) | (1UL << (Signals.SIGSTOP - 1));

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(13, "rt_sigaction", SupportLevel.Partial, RtSigaction, [Signal, Pointer, Pointer, Size]),
        new(14, "rt_sigprocmask", SupportLevel.Full, RtSigprocmask, [Int, Pointer, Pointer, Size]),
        new(131, "sigaltstack", SupportLevel.Partial, Sigaltstack, [Pointer, Pointer]),
        new(62, "kill", SupportLevel.Partial, static (p, in a) => SignalSelf(p, a.Int(0) is 0 or -1 or LinuxProcess.ProcessId, a.Int(1)), [Int, Signal]),
        new(200, "tkill", SupportLevel.Partial, static (p, in a) => SignalSelf(p, a.Int(0) == p.ThreadId, a.Int(1)), [Int, Signal]),
        new(234, "tgkill", SupportLevel.Partial, static (p, in a) => SignalSelf(p, a.Int(0) == LinuxProcess.ProcessId && a.Int(1) == p.ThreadId, a.Int(2)), [Int, Int, Signal]),
    ];

    private static long RtSigaction(LinuxProcess p, in SyscallArgs a)
    {
        int signal = a.Int(0);
        if (signal < 1 || signal > Signals.Count || a.A3 != 8) return -Errno.EINVAL;
        SignalState.Action replacement = default;
        if (a.A1 != 0)
        {
            if (signal is Signals.SIGKILL or Signals.SIGSTOP) return -Errno.EINVAL;
            if (!p.Memory.TryRead(a.A1, out ulong handler) || !p.Memory.TryRead(a.A1 + 8, out ulong flags) ||
                !p.Memory.TryRead(a.A1 + 16, out ulong restorer) || !p.Memory.TryRead(a.A1 + 24, out ulong mask))
                return -Errno.EFAULT;
            replacement = new SignalState.Action(handler, flags, restorer, mask & ~Unblockable);
        }
        if (a.A2 != 0)
        {
            var old = p.Signals.Get(signal);
            if (!p.Memory.TryWrite(a.A2, old.Handler) || !p.Memory.TryWrite(a.A2 + 8, old.Flags) ||
                !p.Memory.TryWrite(a.A2 + 16, old.Restorer) || !p.Memory.TryWrite(a.A2 + 24, old.Mask))
                return -Errno.EFAULT;
        }
        if (a.A1 != 0) p.Signals.Set(signal, replacement);
        return 0;
    }

    private static long RtSigprocmask(LinuxProcess p, in SyscallArgs a)
    {
        if (a.A3 != 8) return -Errno.EINVAL;
        ulong current = p.Signals.BlockedMask;
        ulong next = current;
        if (a.A1 != 0)
        {
            if (!p.Memory.TryRead(a.A1, out ulong set)) return -Errno.EFAULT;
            switch (a.Int(0))
            {
                case SigBlock: next = current | set; break;
                case SigUnblock: next = current & ~set; break;
                case SigSetMask: next = set; break;
                default: return -Errno.EINVAL;
            }
        }
        if (a.A2 != 0 && !p.Memory.TryWrite(a.A2, current)) return -Errno.EFAULT;
        p.Signals.BlockedMask = next & ~Unblockable;
        DeliverUnblocked(p);
        return 0;
    }

    private static long Sigaltstack(LinuxProcess p, in SyscallArgs a)
    {
        const int SsDisable = 2;
        if (a.A1 != 0)
        {
            Span<byte> old = stackalloc byte[24];
            old.Clear();
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(old[8..], SsDisable);
            if (!p.Memory.TryWrite(a.A1, old)) return -Errno.EFAULT;
        }
        if (a.A0 != 0 && !p.Memory.IsAccessible(a.A0, 24, Memory.Protection.Read)) return -Errno.EFAULT;
        return 0;
    }

    /// <summary>A signal the process sends itself: ignored, or fatal by default. Handlers cannot run yet, which is said once.</summary>
    private static long SignalSelf(LinuxProcess p, bool targetIsSelf, int signal)
    {
        if (signal < 0 || signal > Signals.Count) return -Errno.EINVAL;
        if (!targetIsSelf) return -Errno.ESRCH;
        if (signal == 0) return 0;
        bool blocked = (p.Signals.BlockedMask & SignalState.Bit(signal)) != 0 && signal is not (Signals.SIGKILL or Signals.SIGSTOP);
        if (blocked)
        {
            p.Signals.PendingMask |= SignalState.Bit(signal);
            return 0;
        }
        Act(p, signal);
        return 0;
    }

    /// <summary>Acts on pending signals that are no longer blocked, lowest number first (as Linux does for standard signals).</summary>
    private static void DeliverUnblocked(LinuxProcess p)
    {
        ulong ready = p.Signals.PendingMask & ~p.Signals.BlockedMask;
        while (ready != 0 && !p.HasExited)
        {
            int signal = System.Numerics.BitOperations.TrailingZeroCount(ready) + 1;
            p.Signals.PendingMask &= ~SignalState.Bit(signal);
            ready &= ~SignalState.Bit(signal);
            Act(p, signal);
        }
    }

    private static void Act(LinuxProcess p, int signal)
    {
        var action = p.Signals.Get(signal);
        if (action.Handler == SignalState.SigIgnore) return;
        if (action.Handler == SignalState.SigDefault)
        {
            if (!Signals.DefaultIgnored(signal)) p.Terminate(ExitStatus.Killed(signal));
            return;
        }
        p.NoticeOnce("signal-handler", $"p2preplay: the guest raised {Signals.Name(signal)} with a handler installed; signal handlers are not supported yet, so it is fatal");
        p.Terminate(ExitStatus.Killed(signal));
    }
}
