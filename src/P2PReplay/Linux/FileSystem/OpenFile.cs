using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.FileSystem;

/// <summary>An open file description (shared by dup'ed descriptors): flags, position and what it refers to.</summary>
public abstract class OpenFile
{
    protected OpenFile(int flags) => Flags = flags;

    /// <summary>Access mode and status flags as F_GETFL shows them (O_CLOEXEC is per descriptor, not here).</summary>
    public int Flags { get; set; }

    public int AccessMode => Flags & OpenFlags.AccessModeMask;

    public bool IsPathOnly => (Flags & OpenFlags.Path) != 0;

    public bool CanRead => !IsPathOnly && AccessMode is OpenFlags.ReadOnly or OpenFlags.ReadWrite;

    public bool CanWrite => !IsPathOnly && AccessMode is OpenFlags.WriteOnly or OpenFlags.ReadWrite;

    public bool NonBlocking => (Flags & OpenFlags.NonBlock) != 0;

    /// <summary>The tree node behind the description, if any (pipes and standard streams have none).</summary>
    public virtual FsNode? Node => null;

    /// <summary>Descriptors referring to this description.</summary>
    internal int References { get; set; }

    /// <summary>Reads at an absolute offset without moving the file position; bytes read or -errno (mmap of files uses it).</summary>
    public abstract long PRead(Span<byte> buffer, long offset);

    public virtual long PWrite(LinuxProcess process, ReadOnlySpan<byte> buffer, long offset) => -Errno.ESPIPE;

    public abstract long Read(LinuxProcess process, Span<byte> buffer);

    public abstract long Write(LinuxProcess process, ReadOnlySpan<byte> buffer);

    public virtual long Seek(long offset, int whence) => -Errno.ESPIPE;

    public abstract LinuxStat Stat(VirtualFileSystem fileSystem);

    /// <summary>What readlink of /proc/self/fd/N shows.</summary>
    public abstract string LinkText(VirtualFileSystem fileSystem);

    /// <summary>FIONREAD: bytes that a read would return now.</summary>
    public virtual long BytesAvailable => 0;

    /// <summary>
    /// poll(2) readiness (POLLIN 0x1, POLLOUT 0x4, POLLERR 0x8, POLLHUP 0x10). Files, devices and the host's stdio
    /// are always ready: a read of stdin blocks on the host, as a read of a terminal would.
    /// </summary>
    public virtual short PollEvents => 0x1 | 0x4;

    /// <summary>Called when the last descriptor referring to the description is closed.</summary>
    protected internal virtual void Released() { }
}

/// <summary>The made-up stat data of things that are not tree nodes.</summary>
public static class StatBuilder
{
    /// <summary>st_dev of pipes and the standard streams.</summary>
    public const ulong PipeDeviceId = 0xC;
    public const long BlockSize = 4096;

    public static LinuxStat ForNode(VirtualFileSystem fileSystem, FsNode node)
    {
        long size = node.Kind switch
        {
            NodeKind.Regular => node.Data?.Length ?? 0,
            NodeKind.Directory => 4096,
            NodeKind.Symlink => fileSystem.ReadLink(null, node) is { Length: > 0 } target ? VirtualFileSystem.GuestBytes(target).Length : 0,
            _ => 0,
        };
        var st = new LinuxStat
        {
            Dev = VirtualFileSystem.DeviceId,
            Ino = node.Inode,
            Nlink = fileSystem.LinkCount(node),
            Mode = node.Mode,
            Uid = node.Uid,
            Gid = node.Gid,
            Rdev = node.DeviceNumber,
            Size = size,
            BlockSize = BlockSize,
            Blocks = node.Kind is NodeKind.Regular or NodeKind.Directory ? (size + 511) / 512 : 0,
        };
        SetTimes(ref st, node.AccessTime, node.ModifyTime, node.ChangeTime);
        return st;
    }

    /// <summary>A FIFO with mode 0600, size 0 and timestamps 0: how pipes and the standard streams look.</summary>
    public static LinuxStat Fifo(ulong inode) => new()
    {
        Dev = PipeDeviceId,
        Ino = inode,
        Nlink = 1,
        Mode = FileModes.Fifo | 0x180,
        Uid = LinuxProcess.UserId,
        Gid = LinuxProcess.GroupId,
        BlockSize = BlockSize,
    };

    public static void SetTimes(ref LinuxStat st, long access, long modify, long change)
    {
        (st.AtimeSec, st.AtimeNsec) = Split(access);
        (st.MtimeSec, st.MtimeNsec) = Split(modify);
        (st.CtimeSec, st.CtimeNsec) = Split(change);
    }

    public static LinuxStatx ToStatx(in LinuxStat st) => new()
    {
        Mask = LinuxStatx.BasicStats,
        BlockSize = (uint)st.BlockSize,
        Nlink = (uint)Math.Min(st.Nlink, uint.MaxValue),
        Uid = st.Uid,
        Gid = st.Gid,
        Mode = (ushort)st.Mode,
        Ino = st.Ino,
        Size = (ulong)st.Size,
        Blocks = (ulong)st.Blocks,
        Atime = new StatxTimestamp { Sec = st.AtimeSec, Nsec = (uint)st.AtimeNsec },
        Ctime = new StatxTimestamp { Sec = st.CtimeSec, Nsec = (uint)st.CtimeNsec },
        Mtime = new StatxTimestamp { Sec = st.MtimeSec, Nsec = (uint)st.MtimeNsec },
        RdevMajor = Major(st.Rdev),
        RdevMinor = Minor(st.Rdev),
        DevMajor = Major(st.Dev),
        DevMinor = Minor(st.Dev),
    };

    // Linux's new_encode_dev layout.
    public static uint Major(ulong dev) => (uint)((dev >> 8) & 0xFFF);

    public static uint Minor(ulong dev) => (uint)((dev & 0xFF) | ((dev >> 12) & 0xFFF00));

    private static (long Sec, long Nsec) Split(long nanoseconds) =>
        (Math.DivRem(nanoseconds, 1_000_000_000L) is var (q, r) && r < 0 ? (q - 1, r + 1_000_000_000L) : (q, r));
}

/// <summary>An open tree node: a regular file, a directory, a character device, or an O_PATH handle.</summary>
public sealed class NodeFile : OpenFile
{
    private readonly IHostEnvironment _host;
    private readonly VirtualFileSystem _fileSystem;

    public NodeFile(VirtualFileSystem fileSystem, IHostEnvironment host, FsNode node, int flags) : base(flags)
    {
        _fileSystem = fileSystem;
        _host = host;
        FileNode = node;
    }

    public FsNode FileNode { get; }

    public override FsNode? Node => FileNode;

    public long Position { get; set; }

    /// <summary>getdents: the name of the last entry returned (null at the start or after a seek).</summary>
    internal string? DirectoryCursor { get; set; }

    public override long BytesAvailable => FileNode.Data is { } data ? Math.Max(0, data.Length - Position) : 0;

    public override long PRead(Span<byte> buffer, long offset)
    {
        if (offset < 0) return -Errno.EINVAL;
        switch (FileNode.Kind)
        {
            case NodeKind.Directory:
                return -Errno.EISDIR;
            case NodeKind.Regular:
                return FileNode.Data!.Read(buffer, offset);
            case NodeKind.CharDevice:
                switch (FileNode.Device)
                {
                    case DeviceKind.Zero:
                        buffer.Clear();
                        return buffer.Length;
                    case DeviceKind.Random:
                    case DeviceKind.URandom:
                        _host.GetRandomBytes(buffer);
                        return buffer.Length;
                    default:
                        return 0;
                }
            default:
                return -Errno.EINVAL;
        }
    }

    public override long Read(LinuxProcess process, Span<byte> buffer)
    {
        long n = PRead(buffer, Position);
        if (n > 0 && FileNode.Kind == NodeKind.Regular) Position += n;
        return n;
    }

    public override long PWrite(LinuxProcess process, ReadOnlySpan<byte> buffer, long offset)
    {
        if (offset < 0) return -Errno.EINVAL;
        if (FileNode.Kind == NodeKind.CharDevice) return buffer.Length;
        if (FileNode.Kind != NodeKind.Regular) return -Errno.EISDIR;
        // As Linux: pwrite on an O_APPEND file appends.
        if ((Flags & OpenFlags.Append) != 0) offset = FileNode.Data!.Length;
        return WriteAt(process, buffer, offset);
    }

    public override long Write(LinuxProcess process, ReadOnlySpan<byte> buffer)
    {
        if (FileNode.Kind == NodeKind.CharDevice) return buffer.Length;
        if (FileNode.Kind != NodeKind.Regular) return -Errno.EISDIR;
        long offset = (Flags & OpenFlags.Append) != 0 ? FileNode.Data!.Length : Position;
        long n = WriteAt(process, buffer, offset);
        if (n >= 0) Position = offset + n;
        return n;
    }

    private long WriteAt(LinuxProcess process, ReadOnlySpan<byte> buffer, long offset)
    {
        if (buffer.IsEmpty) return 0;
        long n = FileNode.Data!.Write(buffer, offset);
        if (n > 0) FileNode.ModifyTime = FileNode.ChangeTime = process.Host.RealtimeNanoseconds();
        return n;
    }

    public override long Seek(long offset, int whence)
    {
        if (FileNode.Kind == NodeKind.CharDevice) return whence is >= SeekWhence.Set and <= SeekWhence.End ? 0 : -Errno.EINVAL;
        if (FileNode.Kind == NodeKind.Directory)
        {
            long target = whence switch { SeekWhence.Set => offset, SeekWhence.Current => Position + offset, _ => -1 };
            if (whence > SeekWhence.Current) return -Errno.EINVAL;
            if (target < 0) return -Errno.EINVAL;
            Position = target;
            DirectoryCursor = null;
            return target;
        }
        long length = FileNode.Data?.Length ?? 0;
        long result;
        switch (whence)
        {
            case SeekWhence.Set: result = offset; break;
            case SeekWhence.Current: result = Position + offset; break;
            case SeekWhence.End: result = length + offset; break;
            case SeekWhence.Data:
                if (offset < 0) return -Errno.EINVAL;
                if (offset >= length) return -Errno.ENXIO;
                result = offset;
                break;
            case SeekWhence.Hole:
                if (offset < 0) return -Errno.EINVAL;
                if (offset >= length) return -Errno.ENXIO;
                result = length;
                break;
            default: return -Errno.EINVAL;
        }
        // Overflow of the additions shows up as a negative result.
        if (result < 0) return -Errno.EINVAL;
        Position = result;
        return result;
    }

    public override LinuxStat Stat(VirtualFileSystem fileSystem) => StatBuilder.ForNode(fileSystem, FileNode);

    public override string LinkText(VirtualFileSystem fileSystem)
    {
        string? path = fileSystem.PathOf(FileNode);
        if (path is not null) return path;
        return (FileNode.Parent is { } parent && fileSystem.PathOf(parent) is { } dir ? (dir == "/" ? "/" : dir + "/") + FileNode.Name : FileNode.Name)
            + " (deleted)";
    }
}

/// <summary>The VM's standard streams (0 = input, 1 = output, 2 = error): made-up FIFOs, the same on every host.</summary>
public sealed class StandardStream : OpenFile
{
    private readonly IHostEnvironment _host;

    public StandardStream(IHostEnvironment host, int stream)
        : base(stream == 0 ? OpenFlags.ReadOnly : OpenFlags.WriteOnly)
    {
        _host = host;
        Stream = stream;
    }

    public int Stream { get; }

    public ulong Inode => 0x10 + (ulong)Stream;

    public override long PRead(Span<byte> buffer, long offset) => -Errno.ESPIPE;

    public override long Read(LinuxProcess process, Span<byte> buffer)
    {
        if (Stream != 0) return -Errno.EBADF;
        if (buffer.IsEmpty) return 0;
        int n = _host.ReadStdin(buffer);
        return Math.Clamp(n, 0, buffer.Length);
    }

    public override long Write(LinuxProcess process, ReadOnlySpan<byte> buffer)
    {
        if (Stream == 0) return -Errno.EBADF;
        if (!buffer.IsEmpty) _host.WriteOutput(Stream, buffer);
        return buffer.Length;
    }

    public override LinuxStat Stat(VirtualFileSystem fileSystem) => StatBuilder.Fifo(Inode);

    public override string LinkText(VirtualFileSystem fileSystem) => $"pipe:[{Inode}]";
}
