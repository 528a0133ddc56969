using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.FileSystem;

/// <summary>
/// The process's file descriptors (0, 1 and 2 are the VM's standard streams) and its current directory.
/// New descriptors take the lowest free number, as Linux does.
/// </summary>
public sealed class FileTable
{
    /// <summary>RLIMIT_NOFILE.</summary>
    public const int MaxDescriptors = 1024;

    private readonly List<(OpenFile? File, bool CloseOnExec)> _entries = [];
    private ulong _nextPipeInode = 0x1000;

    public FileTable(VirtualFileSystem fileSystem, IHostEnvironment host)
    {
        FileSystem = fileSystem;
        Host = host;
        CurrentDirectory = fileSystem.Root;
        for (int stream = 0; stream < 3; stream++) Install(new StandardStream(host, stream), stream, closeOnExec: false);
    }

    public VirtualFileSystem FileSystem { get; }

    public IHostEnvironment Host { get; }

    /// <summary>The working directory (chdir, getcwd, relative paths).</summary>
    public FsNode CurrentDirectory { get; set; }

    public OpenFile? Get(int fd) => fd >= 0 && fd < _entries.Count ? _entries[fd].File : null;

    public bool IsCloseOnExec(int fd) => Get(fd) is not null && _entries[fd].CloseOnExec;

    public void SetCloseOnExec(int fd, bool value)
    {
        if (Get(fd) is not null) _entries[fd] = (_entries[fd].File, value);
    }

    /// <summary>Open descriptor numbers in ascending order.</summary>
    public IEnumerable<int> OpenDescriptors()
    {
        for (int fd = 0; fd < _entries.Count; fd++)
        {
            if (_entries[fd].File is not null) yield return fd;
        }
    }

    /// <summary>Installs a description at the lowest free number at or above <paramref name="minimum"/>: the fd or -EMFILE.</summary>
    public int Add(OpenFile file, bool closeOnExec, int minimum = 0)
    {
        if (minimum < 0) return -Errno.EINVAL;
        for (int fd = minimum; fd < MaxDescriptors; fd++)
        {
            if (Get(fd) is null)
            {
                Install(file, fd, closeOnExec);
                return fd;
            }
        }
        return -Errno.EMFILE;
    }

    /// <summary>dup2/dup3: makes <paramref name="newFd"/> refer to <paramref name="file"/>, closing what it held.</summary>
    public int Replace(int newFd, OpenFile file, bool closeOnExec)
    {
        if (newFd < 0 || newFd >= MaxDescriptors) return -Errno.EBADF;
        if (Get(newFd) == file)
        {
            _entries[newFd] = (file, closeOnExec);
            return newFd;
        }
        Close(newFd);
        Install(file, newFd, closeOnExec);
        return newFd;
    }

    public int Close(int fd)
    {
        var file = Get(fd);
        if (file is null) return -Errno.EBADF;
        _entries[fd] = (null, false);
        while (_entries.Count > 0 && _entries[^1].File is null) _entries.RemoveAt(_entries.Count - 1);
        if (--file.References == 0) file.Released();
        return 0;
    }

    /// <summary>A new pipe: (read end, write end) descriptions, not yet installed.</summary>
    public (PipeEnd Read, PipeEnd Write) CreatePipe(int flags)
    {
        var pipe = new Pipe(_nextPipeInode++);
        return (new PipeEnd(pipe, isReadEnd: true, flags), new PipeEnd(pipe, isReadEnd: false, flags));
    }

    /// <summary>Closes every close-on-exec descriptor (execve).</summary>
    public void CloseOnExec()
    {
        for (int fd = _entries.Count - 1; fd >= 0; fd--)
        {
            if (fd < _entries.Count && _entries[fd].File is not null && _entries[fd].CloseOnExec) Close(fd);
        }
    }

    /// <summary>Snapshots: the descriptor slots in order (null where closed).</summary>
    internal IReadOnlyList<(OpenFile? File, bool CloseOnExec)> Entries => _entries;

    internal ulong NextPipeInode
    {
        get => _nextPipeInode;
        set => _nextPipeInode = value;
    }

    /// <summary>Snapshots: replaces the descriptor slots; reference counts come with the restored descriptions.</summary>
    internal void RestoreEntries(IEnumerable<(OpenFile? File, bool CloseOnExec)> entries)
    {
        _entries.Clear();
        _entries.AddRange(entries);
    }

    private void Install(OpenFile file, int fd, bool closeOnExec)
    {
        while (_entries.Count <= fd) _entries.Add((null, false));
        _entries[fd] = (file, closeOnExec);
        file.References++;
    }
}
