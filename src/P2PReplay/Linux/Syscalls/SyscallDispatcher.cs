using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.Syscalls;

/// <summary>Looks a syscall up in the table, runs it, counts the unsupported ones and optionally traces each call.</summary>
public sealed class SyscallDispatcher
{
    private readonly SyscallDescriptor[] _table = SyscallTable.ByNumber;
    private readonly Dictionary<long, int> _unsupported = [];
    private readonly SyscallTracer? _tracer;

    public SyscallDispatcher(TextWriter? trace = null)
    {
        if (trace is not null) _tracer = new SyscallTracer(trace);
    }

    public long Count { get; private set; }

    public long Dispatch(LinuxProcess process, in SyscallArgs args)
    {
        Count++;
        if ((uint)args.Number >= (uint)_table.Length)
        {
            process.LastSyscall = args.Number;
            CountUnsupported(args.Number);
            _tracer?.TraceUnknown(args);
            return -Errno.ENOSYS;
        }
        var row = _table[args.Number];
        process.CurrentSyscall = args.Number;
        process.LastSyscall = args.Number;
        long result = row.Handler(process, args);
        process.CurrentSyscall = -1;
        if (row.Level == SupportLevel.Unsupported) CountUnsupported(args.Number);
        _tracer?.Trace(process, row, args, result);
        return result;
    }

    private void CountUnsupported(long number) => _unsupported[number] = _unsupported.GetValueOrDefault(number) + 1;

    /// <summary>The unsupported syscalls the guest made, by number, with how often.</summary>
    public IReadOnlyList<(long Number, string Name, int Calls)> UnsupportedCalls =>
        _unsupported.OrderBy(kv => kv.Key).Select(kv => (kv.Key, SyscallNames.Get((int)kv.Key), kv.Value)).ToList();
}
