namespace P2PReplay.Linux.Syscalls;

// PLACEHOLDER: the file-system helper replaces this file with the file and directory family.
/// <summary>Files, directories, descriptors.</summary>
public static class FileSyscalls
{
    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(1, "write", SupportLevel.Partial, static (p, in a) =>
        {
            if (a.Int(0) is not (1 or 2)) return -Abi.Errno.EBADF;
            if (!p.Memory.TryGetReadable(a.A1, (int)Math.Min(a.A2, 0x7ffff000), out var data)) return -Abi.Errno.EFAULT;
            p.Host.WriteOutput(a.Int(0), data);
            return data.Length;
        }, [ArgKind.Fd, ArgKind.InBuffer, ArgKind.Size]),
    ];
}
