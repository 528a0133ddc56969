namespace P2PReplay.Linux.Syscalls;

/// <summary>
/// The syscall table as data: every x86-64 number maps to a descriptor. Families contribute their rows; every
/// number no family claims becomes an explicit ENOSYS row, so "unsupported" is always a visible, counted decision.
/// </summary>
public static class SyscallTable
{
    public const int Size = 512;

    public static readonly SyscallDescriptor[] ByNumber = Build();

    public static IEnumerable<IEnumerable<SyscallDescriptor>> Families()
    {
        yield return FileSyscalls.Descriptors();
        yield return PathSyscalls.Descriptors();
        yield return MemorySyscalls.Descriptors();
        yield return ProcessSyscalls.Descriptors();
        yield return SignalSyscalls.Descriptors();
        yield return TimeSyscalls.Descriptors();
        yield return MiscSyscalls.Descriptors();
        yield return PollSyscalls.Descriptors();
        yield return SocketSyscalls.Descriptors();
        yield return EpollSyscalls.Descriptors();
    }

    private static SyscallDescriptor[] Build()
    {
        var table = new SyscallDescriptor[Size];
        foreach (var family in Families())
        {
            foreach (var row in family)
            {
                if (table[row.Number] is { } existing)
                    throw new InvalidOperationException($"syscall {row.Number} ({row.Name}) is claimed twice (also {existing.Name})");
                table[row.Number] = row;
            }
        }
        for (int n = 0; n < Size; n++) table[n] ??= SyscallDescriptor.Unsupported(n, SyscallNames.Get(n));
        return table;
    }
}
