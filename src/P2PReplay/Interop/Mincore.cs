using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static unsafe partial class NativeMincore
{
    /// <summary>mincore(2): one byte per page of [addr, addr+length), bit 0 set where the page is resident.</summary>
    [LibraryImport(Libc.Name, EntryPoint = "mincore", SetLastError = true)]
    public static partial int Mincore(void* addr, nuint length, byte* vector);
}
