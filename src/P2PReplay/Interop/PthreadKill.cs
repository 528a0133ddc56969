using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static partial class NativePthreadKill
{
    /// <summary>Returns 0 or an errno (pthread functions do not set errno).</summary>
    [LibraryImport(Libc.Name, EntryPoint = "pthread_kill")]
    public static partial int PthreadKill(nuint thread, int signal);
}
