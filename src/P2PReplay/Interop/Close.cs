using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static partial class NativeClose
{
    [LibraryImport(Libc.Name, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);
}
