using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.FileSystem;

/// <summary>
/// An in-process pipe. The VM runs one process, so nothing can ever drain or fill a pipe while a call waits:
/// <list type="bullet">
/// <item>reading an empty pipe with no writer left returns 0 (end of file, as Linux);</item>
/// <item>reading an empty pipe whose write end is still open returns -EAGAIN for O_NONBLOCK, otherwise 0 (end of
/// file, with a notice) because blocking would hang the VM forever;</item>
/// <item>writing with no reader left returns -EPIPE (SIGPIPE is not raised);</item>
/// <item>a non-blocking write obeys the 64 KiB capacity (partial write, then -EAGAIN); a blocking write that does not
/// fit would hang forever, so the buffer grows past the capacity up to 16 MiB instead (the bytes stay readable).</item>
/// </list>
/// </summary>
public sealed class Pipe(ulong inode)
{
    public const int Capacity = 64 * 1024;
    public const int HardLimit = 16 * 1024 * 1024;

    private byte[] _buffer = new byte[4096];
    private int _start;

    public ulong Inode { get; } = inode;

    public int Count { get; private set; }

    public int Readers { get; internal set; }

    public int Writers { get; internal set; }

    public long Read(LinuxProcess process, Span<byte> destination, bool nonBlocking)
    {
        if (destination.IsEmpty) return 0;
        if (Count == 0)
        {
            if (Writers == 0) return 0;
            if (nonBlocking) return -Errno.EAGAIN;
            process.NoticeOnce("pipe-read-block",
                "p2preplay: the program read an empty pipe that it still holds open for writing; in a single-process VM that would block forever, so it reads end-of-file");
            return 0;
        }
        int n = Math.Min(destination.Length, Count);
        int first = Math.Min(n, _buffer.Length - _start);
        _buffer.AsSpan(_start, first).CopyTo(destination);
        _buffer.AsSpan(0, n - first).CopyTo(destination[first..]);
        _start = (_start + n) % _buffer.Length;
        Count -= n;
        if (Count == 0) _start = 0;
        return n;
    }

    public long Write(LinuxProcess process, ReadOnlySpan<byte> source, bool nonBlocking)
    {
        if (Readers == 0) return -Errno.EPIPE;
        if (source.IsEmpty) return 0;
        int limit = nonBlocking ? Capacity : HardLimit;
        int n = (int)Math.Min(source.Length, Math.Max(0, limit - Count));
        if (n == 0)
        {
            if (!nonBlocking)
            {
                process.NoticeOnce("pipe-write-block",
                    "p2preplay: the program filled a pipe that nothing can drain (a single-process VM); the write fails with EAGAIN");
            }
            return -Errno.EAGAIN;
        }
        EnsureCapacity(Count + n);
        int tail = (_start + Count) % _buffer.Length;
        int first = Math.Min(n, _buffer.Length - tail);
        source[..first].CopyTo(_buffer.AsSpan(tail));
        source[first..n].CopyTo(_buffer);
        Count += n;
        return n;
    }

    /// <summary>Snapshots: the buffered bytes in reading order.</summary>
    internal byte[] Contents()
    {
        var bytes = new byte[Count];
        int first = Math.Min(Count, _buffer.Length - _start);
        _buffer.AsSpan(_start, first).CopyTo(bytes);
        _buffer.AsSpan(0, Count - first).CopyTo(bytes.AsSpan(first));
        return bytes;
    }

    internal void RestoreContents(byte[] bytes)
    {
        _buffer = bytes.Length > 4096 ? (byte[])bytes.Clone() : new byte[4096];
        bytes.CopyTo(_buffer, 0);
        _start = 0;
        Count = bytes.Length;
    }

    private void EnsureCapacity(int needed)
    {
        if (needed <= _buffer.Length) return;
        var grown = new byte[Math.Max(needed, Math.Min(HardLimit, _buffer.Length * 2))];
        int first = Math.Min(Count, _buffer.Length - _start);
        _buffer.AsSpan(_start, first).CopyTo(grown);
        _buffer.AsSpan(0, Count - first).CopyTo(grown.AsSpan(first));
        _buffer = grown;
        _start = 0;
    }
}

/// <summary>One end of a <see cref="Pipe"/>.</summary>
public sealed class PipeEnd : OpenFile
{
    public PipeEnd(Pipe pipe, bool isReadEnd, int flags)
        : base((flags & ~OpenFlags.AccessModeMask) | (isReadEnd ? OpenFlags.ReadOnly : OpenFlags.WriteOnly))
    {
        Pipe = pipe;
        IsReadEnd = isReadEnd;
        if (isReadEnd) pipe.Readers++;
        else pipe.Writers++;
    }

    public Pipe Pipe { get; }

    public bool IsReadEnd { get; }

    public override long BytesAvailable => IsReadEnd ? Pipe.Count : 0;

    public override short PollEvents => IsReadEnd
        ? (short)((Pipe.Count > 0 ? 0x1 : 0) | (Pipe.Writers == 0 ? 0x10 : 0))
        : (short)(Pipe.Readers == 0 ? 0x8 : Pipe.Count < Pipe.Capacity ? 0x4 : 0);

    public override long PRead(Span<byte> buffer, long offset) => -Errno.ESPIPE;

    public override long Read(LinuxProcess process, Span<byte> buffer) =>
        IsReadEnd ? Pipe.Read(process, buffer, NonBlocking) : -Errno.EBADF;

    public override long Write(LinuxProcess process, ReadOnlySpan<byte> buffer) =>
        IsReadEnd ? -Errno.EBADF : Pipe.Write(process, buffer, NonBlocking);

    public override LinuxStat Stat(VirtualFileSystem fileSystem) => StatBuilder.Fifo(Pipe.Inode);

    public override string LinkText(VirtualFileSystem fileSystem) => $"pipe:[{Pipe.Inode}]";

    protected internal override void Released()
    {
        if (IsReadEnd) Pipe.Readers--;
        else Pipe.Writers--;
    }
}
