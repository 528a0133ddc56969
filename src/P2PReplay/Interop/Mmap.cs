using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static unsafe partial class NativeMmap
{
    [LibraryImport(Libc.Name, EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);
}
