namespace P2PReplay.Linux.Syscalls;

/// <summary>The six syscall arguments (rdi, rsi, rdx, r10, r8, r9) and the number (rax).</summary>
public readonly record struct SyscallArgs(int Number, ulong A0, ulong A1, ulong A2, ulong A3, ulong A4, ulong A5)
{
    public ulong this[int index] => index switch
    {
        0 => A0, 1 => A1, 2 => A2, 3 => A3, 4 => A4, 5 => A5,
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    /// <summary>An int-typed argument, as the kernel reads it (low 32 bits, sign-extended).</summary>
    public int Int(int index) => unchecked((int)this[index]);
}

/// <summary>One handler signature for every syscall: returns the result or -errno.</summary>
public delegate long SyscallHandler(LinuxProcess process, in SyscallArgs args);

/// <summary>How completely a syscall is implemented.</summary>
public enum SupportLevel
{
    /// <summary>Implemented with Linux semantics.</summary>
    Full,
    /// <summary>Implemented for the common cases; the rest return a documented errno.</summary>
    Partial,
    /// <summary>Accepted and succeeds without effect, because nothing in the VM depends on it (e.g. madvise hints).</summary>
    NoOp,
    /// <summary>Explicitly returns -ENOSYS and is counted.</summary>
    Unsupported,
}

/// <summary>How the tracer prints an argument.</summary>
public enum ArgKind : byte
{
    Int,
    Hex,
    Fd,
    DirFd,
    Path,
    /// <summary>A buffer the guest passes in; its length is the next argument.</summary>
    InBuffer,
    /// <summary>A buffer the kernel fills; its length is the result.</summary>
    OutBuffer,
    Size,
    Octal,
    Pointer,
    Signal,
}

/// <summary>A row of the syscall table: number → name, handler, support level, argument kinds for tracing.</summary>
public sealed record SyscallDescriptor(int Number, string Name, SupportLevel Level, SyscallHandler Handler, ArgKind[] Args)
{
    public static SyscallDescriptor Unsupported(int number, string name, params ArgKind[] args) =>
        new(number, name, SupportLevel.Unsupported, static (_, in _) => -Abi.Errno.ENOSYS, args);
}
