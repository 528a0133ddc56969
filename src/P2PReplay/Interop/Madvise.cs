using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static unsafe partial class NativeMadvise
{
    [LibraryImport(Libc.Name, EntryPoint = "madvise", SetLastError = true)]
    public static partial int Madvise(void* addr, nuint length, int advice);
}
