namespace P2PReplay.Linux.Syscalls;

// PLACEHOLDER: the file-system helper replaces this file with the file and directory family.
/// <summary>Files, directories, descriptors.</summary>
public static class FileSyscalls
{
    public static IEnumerable<SyscallDescriptor> Descriptors() => [];
}
