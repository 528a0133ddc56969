namespace P2PReplay.Interop;

/// <summary>The calling thread's set of allowed host CPUs (a 1024-CPU cpu_set_t).</summary>
internal static class ThreadAffinity
{
    private const int Words = 16;

    /// <summary>The current mask, or null when it cannot be read.</summary>
    public static unsafe ulong[]? Get()
    {
        var mask = new ulong[Words];
        // SAFETY: mask is a pinned managed array of exactly Words * 8 bytes, the size passed.
        fixed (ulong* p = mask)
        {
            return NativeSchedGetaffinity.SchedGetaffinity(0, Words * sizeof(ulong), p) < 0 ? null : mask;
        }
    }

    /// <summary>Restricts the calling thread to one CPU; false when the kernel refuses (no such CPU, cpuset).</summary>
    public static bool PinTo(int cpu)
    {
        if (cpu is < 0 or >= Words * 64) return false;
        var mask = new ulong[Words];
        mask[cpu / 64] = 1UL << (cpu % 64);
        return Set(mask);
    }

    public static unsafe bool Set(ulong[] mask)
    {
        if (mask.Length != Words) throw new ArgumentException($"a CPU mask has {Words} words", nameof(mask));
        // SAFETY: mask is a pinned managed array of exactly Words * 8 bytes, the size passed.
        fixed (ulong* p = mask)
        {
            return NativeSchedSetaffinity.SchedSetaffinity(0, Words * sizeof(ulong), p) == 0;
        }
    }
}
