using System.Buffers.Binary;
using P2PReplay.Linux.Abi;
using P2PReplay.Linux.FileSystem;

namespace P2PReplay.Linux.Net;

public enum SocketState : byte { Created, Bound, Listening, Connected, Closed }

/// <summary>
/// A virtual TCP socket (AF_INET or AF_INET6, SOCK_STREAM). Reads of an empty connected socket take host events until
/// bytes or the peer's end arrive; writes go to the host as output. Never backed by a host socket.
/// </summary>
public sealed class Socket : OpenFile
{
    public const int AfInet = 2, AfInet6 = 10;
    public const short PollIn = 0x1, PollOut = 0x4, PollErr = 0x8, PollHup = 0x10, PollRdHup = 0x2000;

    private readonly VirtualNetwork _network;
    private byte[] _received = new byte[4096];
    private int _start, _count;
    private readonly Dictionary<(int Level, int Name), int> _options = [];

    internal Socket(VirtualNetwork network, int family, int flags) : base(OpenFlags.ReadWrite | (flags & OpenFlags.NonBlock))
    {
        _network = network;
        Family = family;
        Inode = network.NextInode();
        network.SocketCreated();
    }

    public int Family { get; }

    public ulong Inode { get; internal set; }

    public SocketState State { get; internal set; }

    /// <summary>The port this socket bound (0: none); accepted connections have <see cref="LocalPort"/> instead.</summary>
    public int BoundPort { get; internal set; }

    public int LocalPort { get; internal set; }

    public byte[] LocalAddress { get; internal set; } = [];

    public byte[] PeerAddress { get; internal set; } = [];

    public int PeerPort { get; internal set; }

    public long Connection { get; internal set; }

    /// <summary>The other end of a connection inside the guest (connect to its own listening port); null otherwise.</summary>
    internal Socket? LocalPeer { get; set; }

    public int Backlog { get; internal set; }

    public bool PeerClosed { get; internal set; }

    public bool ReadShut { get; internal set; }

    public bool WriteShut { get; internal set; }

    public int BytesQueued => _count;

    /// <summary>Counts input arrivals (bytes, connections, the peer's close): edge-triggered epoll reports each.</summary>
    public long InputGeneration { get; internal set; }

    internal Queue<PendingConnection> PendingAccepts { get; } = new();

    /// <summary>A guest-internal client not accepted yet: where its bytes wait.</summary>
    internal PendingConnection? PendingAtListener { get; set; }

    public int PendingConnections => PendingAccepts.Count;

    internal VirtualNetwork Network => _network;

    public int GetOption(int level, int name, int fallback) => _options.TryGetValue((level, name), out int v) ? v : fallback;

    public void SetOption(int level, int name, int value) => _options[(level, name)] = value;

    /// <summary>Snapshots: the socket options set, in a fixed order.</summary>
    internal IEnumerable<KeyValuePair<(int Level, int Name), int>> Options => _options.OrderBy(o => o.Key.Level).ThenBy(o => o.Key.Name);

    /// <summary>Snapshots: the unread bytes.</summary>
    internal byte[] QueuedBytes() => _received.AsSpan(_start, _count).ToArray();

    internal void RestoreQueue(byte[] bytes)
    {
        _received = bytes.Length > 4096 ? (byte[])bytes.Clone() : new byte[4096];
        bytes.CopyTo(_received, 0);
        _start = 0;
        _count = bytes.Length;
    }

    internal void Receive(ReadOnlySpan<byte> data)
    {
        if (ReadShut || data.IsEmpty) return;
        InputGeneration++;
        if (_start + _count + data.Length > _received.Length)
        {
            var grown = new byte[Math.Max(_received.Length * 2, _count + data.Length)];
            _received.AsSpan(_start, _count).CopyTo(grown);
            _received = grown;
            _start = 0;
        }
        data.CopyTo(_received.AsSpan(_start + _count));
        _count += data.Length;
    }

    /// <summary>Creates the connected socket for an accepted connection.</summary>
    internal static Socket FromPending(Socket listener, PendingConnection pending, int flags)
    {
        var s = new Socket(listener._network, listener.Family, flags)
        {
            State = SocketState.Connected,
            LocalPort = listener.BoundPort,
            LocalAddress = listener.LocalAddress,
            PeerAddress = pending.PeerAddress,
            PeerPort = pending.PeerPort,
            Connection = pending.Connection,
            PeerClosed = pending.PeerClosed,
        };
        s.Receive(pending.Received.ToArray());
        if (pending.LocalClient is { } client)
        {
            client.PendingAtListener = null;
            s.LocalPeer = client;
            client.LocalPeer = s;
            if (client.WriteShut || client.State == SocketState.Closed) s.PeerClosed = true;
        }
        else
        {
            listener._network.Accepted(s);
        }
        return s;
    }

    public override short PollEvents => State switch
    {
        SocketState.Listening => (short)(PendingAccepts.Count > 0 ? PollIn : 0),
        SocketState.Connected => (short)((_count > 0 || PeerClosed || ReadShut ? PollIn : 0)
            | (PeerClosed ? PollRdHup : 0)
            | (PeerClosed && WriteShut ? PollHup : 0)
            | (WriteShut ? 0 : PollOut)),
        _ => PollOut | PollHup, // as Linux: an unconnected stream socket
    };

    public override long BytesAvailable => _count;

    /// <summary>recv: bytes, 0 at the peer's end, or -errno. Blocks (takes host events) unless non-blocking.</summary>
    public long Receive(LinuxProcess process, Span<byte> buffer, bool peek, bool nonBlocking)
    {
        if (State != SocketState.Connected) return -Errno.ENOTCONN;
        if (buffer.IsEmpty) return 0;
        bool ready = _network.WaitFor(() => _count > 0 || PeerClosed || ReadShut || State != SocketState.Connected, nonBlocking ? 0 : null);
        if (_count == 0)
        {
            if (PeerClosed || ReadShut || State != SocketState.Connected) return 0;
            if (nonBlocking) return -Errno.EAGAIN;
            if (!ready)
            {
                process.NoticeOnce("net-ended", "p2preplay: the guest waits on a socket, but the host network says nothing more will arrive; the read returns end-of-file");
                return 0;
            }
        }
        int n = Math.Min(buffer.Length, _count);
        _received.AsSpan(_start, n).CopyTo(buffer);
        if (!peek)
        {
            _start += n;
            _count -= n;
            if (_count == 0) _start = 0;
        }
        return n;
    }

    /// <summary>send: all bytes (the host buffers without limit) or -errno (EPIPE when not connected, as Linux's TCP;
    /// SIGPIPE is not raised).</summary>
    public long Send(ReadOnlySpan<byte> buffer)
    {
        if (State != SocketState.Connected) return -Errno.EPIPE;
        if (WriteShut) return -Errno.EPIPE;
        if (buffer.IsEmpty) return 0;
        if (Connection < 0)
        {
            // Inside the guest: straight into the other end (or its pending connection); gone: EPIPE.
            if (LocalPeer is { } peer)
            {
                if (peer.State == SocketState.Closed) return -Errno.EPIPE;
                peer.Receive(buffer);
            }
            else if (PendingAtListener is { } pending) pending.Received.Write(buffer);
            else return -Errno.EPIPE;
            return buffer.Length;
        }
        _network.Send(this, buffer);
        return buffer.Length;
    }

    public override long PRead(Span<byte> buffer, long offset) => -Errno.ESPIPE;

    public override long Read(LinuxProcess process, Span<byte> buffer) => Receive(process, buffer, peek: false, NonBlocking);

    public override long Write(LinuxProcess process, ReadOnlySpan<byte> buffer) => Send(buffer);

    public override LinuxStat Stat(VirtualFileSystem fileSystem) => new()
    {
        Dev = 0x8,
        Ino = Inode,
        Nlink = 1,
        Mode = FileModes.Socket | 0x1FF,
        Uid = LinuxProcess.UserId,
        Gid = LinuxProcess.GroupId,
        BlockSize = StatBuilder.BlockSize,
    };

    public override string LinkText(VirtualFileSystem fileSystem) => $"socket:[{Inode}]";

    protected internal override void Released() => _network.SocketReleased(this);

    /// <summary>The struct sockaddr_in / sockaddr_in6 of an address and port in this socket's family.</summary>
    public byte[] SockAddr(byte[] address, int port)
    {
        if (Family == AfInet)
        {
            var b = new byte[16];
            BinaryPrimitives.WriteUInt16LittleEndian(b, AfInet);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)port);
            if (address.Length == 4) address.CopyTo(b, 4);
            else if (address.Length == 16 && IsV4Mapped(address)) address.AsSpan(12, 4).CopyTo(b.AsSpan(4));
            return b;
        }
        var v6 = new byte[28];
        BinaryPrimitives.WriteUInt16LittleEndian(v6, AfInet6);
        BinaryPrimitives.WriteUInt16BigEndian(v6.AsSpan(2), (ushort)port);
        if (address.Length == 16) address.CopyTo(v6, 8);
        else if (address.Length == 4)
        {
            v6[18] = v6[19] = 0xFF; // ::ffff:a.b.c.d
            address.CopyTo(v6, 20);
        }
        return v6;
    }

    private static bool IsV4Mapped(byte[] a) => a.AsSpan(0, 10).IndexOfAnyExcept((byte)0) < 0 && a[10] == 0xFF && a[11] == 0xFF;
}
