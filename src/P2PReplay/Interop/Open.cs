using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static partial class NativeOpen
{
    [LibraryImport(Libc.Name, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags);
}
