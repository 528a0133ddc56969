using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static unsafe partial class NativeSigtimedwait
{
    /// <summary>set points at sigset_t, info at a 128-byte siginfo_t, timeout at struct timespec.</summary>
    [LibraryImport(Libc.Name, EntryPoint = "sigtimedwait", SetLastError = true)]
    public static partial int Sigtimedwait(ulong* set, byte* info, long* timeout);
}
