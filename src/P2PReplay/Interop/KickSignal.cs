namespace P2PReplay.Interop;

/// <summary>
/// The real-time signal that kicks a vCPU thread out of KVM_RUN. It stays blocked in the thread and is unblocked only
/// inside KVM_RUN (KVM_SET_SIGNAL_MASK), so it interrupts the guest without ever running a handler; the vCPU thread
/// then consumes it with sigtimedwait (KVM-NOTES: otherwise every later KVM_RUN returns EINTR at once).
/// </summary>
internal static unsafe class KickSignal
{
    /// <summary>SIGRTMIN+6 (glibc's SIGRTMIN is 34; .NET uses SIGRTMIN itself).</summary>
    public const int Number = 40;

    private const int SigsetWords = 16; // glibc sigset_t: 1024 bits

    public static ulong Bit => 1UL << (Number - 1);

    /// <summary>Blocks the kick in the calling thread; returns the thread's kernel signal mask (64 bits) from before.</summary>
    public static ulong BlockInCurrentThread()
    {
        ulong* set = stackalloc ulong[SigsetWords];
        ulong* old = stackalloc ulong[SigsetWords];
        // SAFETY: both buffers hold a full glibc sigset_t.
        new Span<ulong>(set, SigsetWords).Clear();
        set[0] = Bit;
        int error = NativePthreadSigmask.PthreadSigmask(NativePthreadSigmask.SigBlock, set, old);
        if (error != 0) throw new System.ComponentModel.Win32Exception(error, "pthread_sigmask failed");
        return old[0];
    }

    public static nuint CurrentThread() => NativePthreadSelf.PthreadSelf();

    /// <summary>Sends the kick to a thread; false if the thread is gone.</summary>
    public static bool Send(nuint thread) => NativePthreadKill.PthreadKill(thread, Number) == 0;

    /// <summary>Consumes a pending kick in the calling thread without waiting.</summary>
    public static void DrainPending()
    {
        ulong* set = stackalloc ulong[SigsetWords];
        byte* info = stackalloc byte[128];
        long* zero = stackalloc long[2];
        // SAFETY: set is a full sigset_t, info a full siginfo_t, zero a timespec {0, 0}.
        new Span<ulong>(set, SigsetWords).Clear();
        set[0] = Bit;
        zero[0] = zero[1] = 0;
        while (NativeSigtimedwait.Sigtimedwait(set, info, zero) == Number)
        {
        }
    }
}
