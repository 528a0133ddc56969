namespace P2PReplay.Linux.FileSystem;

// PLACEHOLDER: the file-system helper replaces this file.
/// <summary>The process's file descriptors; 0, 1 and 2 are the host's stdio.</summary>
public sealed class FileTable(VirtualFileSystem fileSystem, IHostEnvironment host)
{
    public VirtualFileSystem FileSystem { get; } = fileSystem;

    public IHostEnvironment Host { get; } = host;

    public OpenFile? Get(int fd) => null;
}

/// <summary>An open file description.</summary>
public abstract class OpenFile
{
    /// <summary>Reads at an absolute offset without moving the file position; bytes read or -errno (mmap of files uses it).</summary>
    public abstract long PRead(Span<byte> buffer, long offset);
}
