using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static unsafe partial class NativeSchedGetaffinity
{
    /// <summary>pid 0: the calling thread. Fills a cpu_set_t (bit n = CPU n); returns its size in bytes or -1.</summary>
    [LibraryImport(Libc.Name, EntryPoint = "sched_getaffinity", SetLastError = true)]
    public static partial int SchedGetaffinity(int pid, nuint size, ulong* mask);
}
