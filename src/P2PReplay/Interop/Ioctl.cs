using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

/// <summary>ioctl(2). Two managed signatures for the one native call: an integer or a pointer argument.</summary>
internal static unsafe partial class NativeIoctl
{
    [LibraryImport(Libc.Name, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, nuint arg);

    [LibraryImport(Libc.Name, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, void* arg);
}
