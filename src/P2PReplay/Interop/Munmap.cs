using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static unsafe partial class NativeMunmap
{
    [LibraryImport(Libc.Name, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* addr, nuint length);
}
