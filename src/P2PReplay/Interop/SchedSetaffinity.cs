using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static unsafe partial class NativeSchedSetaffinity
{
    /// <summary>pid 0: the calling thread. The mask is a cpu_set_t (bit n = CPU n).</summary>
    [LibraryImport(Libc.Name, EntryPoint = "sched_setaffinity", SetLastError = true)]
    public static partial int SchedSetaffinity(int pid, nuint size, ulong* mask);
}
