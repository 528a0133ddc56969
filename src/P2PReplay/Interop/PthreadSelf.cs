using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static partial class NativePthreadSelf
{
    [LibraryImport(Libc.Name, EntryPoint = "pthread_self")]
    public static partial nuint PthreadSelf();
}
