using P2PReplay.Linux.Abi;
using P2PReplay.Linux.FileSystem;

namespace P2PReplay.Linux.Net;

/// <summary>
/// An epoll instance: an interest list in the order descriptors were added (so results are deterministic).
/// Level-triggered by default. EPOLLET reports an entry only when one of its events newly became true since it was
/// last reported, or when new input (bytes, a connection, the peer's close) arrived on a socket; EPOLLONESHOT disarms
/// an entry after it is reported, until EPOLL_CTL_MOD.
/// </summary>
public sealed class EpollFile(ulong inode, int flags) : OpenFile(OpenFlags.ReadWrite | flags)
{
    public const uint EpollIn = 0x1, EpollPri = 0x2, EpollOut = 0x4, EpollErr = 0x8, EpollHup = 0x10, EpollRdHup = 0x2000,
        EpollExclusive = 1u << 28, EpollWakeup = 1u << 29, EpollOneShot = 1u << 30, EpollEt = 1u << 31;

    public sealed class Entry(int fd, OpenFile file, uint events, ulong data)
    {
        public int Fd { get; } = fd;
        public OpenFile File { get; } = file;
        public uint Events { get; set; } = events;
        public ulong Data { get; set; } = data;
        public bool Disarmed { get; set; }
        /// <summary>Edge-triggered bookkeeping: the events and the socket's input generation at the last look.</summary>
        public uint LastEvents { get; set; }
        public long LastGeneration { get; set; } = -1;
    }

    public List<Entry> Interest { get; } = [];

    public ulong Inode { get; } = inode;

    public Entry? Find(int fd, OpenFile file) => Interest.Find(e => e.Fd == fd && e.File == file);

    /// <summary>The ready entries (at most <paramref name="max"/>), with their events; descriptors closed since are dropped.</summary>
    public List<(ulong Data, uint Events)> Ready(LinuxProcess process, int max)
    {
        Interest.RemoveAll(e => process.Files.Get(e.Fd) != e.File);
        var ready = new List<(ulong, uint)>();
        foreach (var e in Interest)
        {
            if (ready.Count >= max) break;
            if (e.Disarmed) continue;
            uint events = (uint)(ushort)e.File.PollEvents & (e.Events | EpollErr | EpollHup);
            if ((e.Events & EpollEt) != 0)
            {
                long generation = (e.File as Socket)?.InputGeneration ?? 0;
                uint fresh = events & ~e.LastEvents;
                if (generation != e.LastGeneration) fresh |= events & (EpollIn | EpollRdHup | EpollHup | EpollErr);
                e.LastEvents = events;
                e.LastGeneration = generation;
                if (fresh == 0) continue;
            }
            if (events == 0) continue;
            ready.Add((e.Data, events));
            if ((e.Events & EpollOneShot) != 0) e.Disarmed = true;
        }
        return ready;
    }

    /// <summary>An epoll descriptor is readable when something in it is ready.</summary>
    public override short PollEvents => 0;

    public override long PRead(Span<byte> buffer, long offset) => -Errno.ESPIPE;

    public override long Read(LinuxProcess process, Span<byte> buffer) => -Errno.EINVAL;

    public override long Write(LinuxProcess process, ReadOnlySpan<byte> buffer) => -Errno.EINVAL;

    public override LinuxStat Stat(VirtualFileSystem fileSystem) => new()
    {
        Dev = 0xD,
        Ino = Inode,
        Nlink = 1,
        Mode = 0x180,
        Uid = LinuxProcess.UserId,
        Gid = LinuxProcess.GroupId,
        BlockSize = StatBuilder.BlockSize,
    };

    public override string LinkText(VirtualFileSystem fileSystem) => "anon_inode:[eventpoll]";
}
