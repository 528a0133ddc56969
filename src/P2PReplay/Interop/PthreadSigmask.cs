using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static unsafe partial class NativePthreadSigmask
{
    public const int SigBlock = 0;

    /// <summary>set and oldSet point at sigset_t (128 bytes in glibc). Returns 0 or an errno.</summary>
    [LibraryImport(Libc.Name, EntryPoint = "pthread_sigmask")]
    public static partial int PthreadSigmask(int how, ulong* set, ulong* oldSet);
}
