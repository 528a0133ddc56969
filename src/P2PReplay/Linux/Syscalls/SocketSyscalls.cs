using System.Buffers.Binary;
using P2PReplay.Linux.Abi;
using P2PReplay.Linux.FileSystem;
using P2PReplay.Linux.Memory;
using P2PReplay.Linux.Net;
using static P2PReplay.Linux.Syscalls.ArgKind;

namespace P2PReplay.Linux.Syscalls;

/// <summary>
/// Virtual TCP sockets (see <see cref="VirtualNetwork"/>): AF_INET/AF_INET6 SOCK_STREAM servers. connect() reaches
/// the guest's own listening ports (loopback or unspecified address; ECONNREFUSED when nobody listens); anything else
/// fails with ENETUNREACH (the VM reaches no one outside yet); socketpair and datagram sockets are not supported.
/// </summary>
public static class SocketSyscalls
{
    private const int SockStream = 1, SockNonBlock = OpenFlags.NonBlock, SockCloexec = OpenFlags.CloseOnExec;
    private const int SolSocket = 1, IpProtoTcp = 6, IpProtoIp = 0, IpProtoIpv6 = 41;
    private const int SoType = 3, SoError = 4, SoReuseAddr = 2, SoSndBuf = 7, SoRcvBuf = 8, SoKeepAlive = 9, SoLinger = 13,
        SoReusePort = 15, SoAcceptConn = 30, SoDomain = 39, SoProtocol = 38;
    private const int TcpNoDelay = 1, Ipv6V6Only = 26;
    // Other MSG_ flags (MSG_NOSIGNAL, MSG_MORE, MSG_WAITALL, ...) are accepted: SIGPIPE is never raised, sends are never
    // partial, and a MSG_WAITALL receive may return fewer bytes than asked (as after a signal).
    private const int MsgOob = 0x1, MsgPeek = 0x2, MsgDontWait = 0x40;
    private const int MaxIoVectors = 1024;

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(41, "socket", SupportLevel.Partial, SocketCall, [Int, Hex, Int]),
        new(42, "connect", SupportLevel.Partial, Connect, [Fd, Pointer, Int]),
        new(43, "accept", SupportLevel.Full, Accept, [Fd, Pointer, Pointer]),
        new(288, "accept4", SupportLevel.Full, Accept4, [Fd, Pointer, Pointer, Hex]),
        new(44, "sendto", SupportLevel.Full, SendTo, [Fd, InBuffer, Size, Hex, Pointer, Int]),
        new(45, "recvfrom", SupportLevel.Full, RecvFrom, [Fd, OutBuffer, Size, Hex, Pointer, Pointer]),
        new(46, "sendmsg", SupportLevel.Partial, SendMsg, [Fd, Pointer, Hex]),
        new(47, "recvmsg", SupportLevel.Partial, RecvMsg, [Fd, Pointer, Hex]),
        new(48, "shutdown", SupportLevel.Full, Shutdown, [Fd, Int]),
        new(49, "bind", SupportLevel.Full, Bind, [Fd, Pointer, Int]),
        new(50, "listen", SupportLevel.Full, Listen, [Fd, Int]),
        new(51, "getsockname", SupportLevel.Full, GetSockName, [Fd, Pointer, Pointer]),
        new(52, "getpeername", SupportLevel.Full, GetPeerName, [Fd, Pointer, Pointer]),
        SyscallDescriptor.Unsupported(53, "socketpair", Int, Int, Int, Pointer),
        new(54, "setsockopt", SupportLevel.Partial, SetSockOpt, [Fd, Int, Int, Pointer, Int]),
        new(55, "getsockopt", SupportLevel.Partial, GetSockOpt, [Fd, Int, Int, Pointer, Pointer]),
    ];

    private static long Lookup(LinuxProcess p, int fd, out Socket socket)
    {
        socket = null!;
        var file = p.Files.Get(fd);
        if (file is null) return -Errno.EBADF;
        if (file is not Socket s) return -Errno.ENOTSOCK;
        socket = s;
        return 0;
    }

    private static long SocketCall(LinuxProcess p, in SyscallArgs a)
    {
        int domain = a.Int(0), type = a.Int(1), protocol = a.Int(2);
        if (domain is not (Socket.AfInet or Socket.AfInet6)) return -Errno.EAFNOSUPPORT;
        if ((type & ~(0xF | SockNonBlock | SockCloexec)) != 0) return -Errno.EINVAL;
        if ((type & 0xF) != SockStream) return -Errno.ESOCKTNOSUPPORT;
        if (protocol is not (0 or IpProtoTcp)) return -Errno.EPROTONOSUPPORT;
        var socket = new Socket(p.Network, domain, type & SockNonBlock);
        int fd = p.Files.Add(socket, (type & SockCloexec) != 0);
        if (fd < 0) socket.Network.SocketReleased(socket);
        return fd;
    }

    /// <summary>Reads a sockaddr of the socket's family: address bytes and port, or -errno.</summary>
    private static long ReadSockAddr(LinuxProcess p, Socket socket, ulong address, int length, out byte[] ip, out int port)
    {
        ip = [];
        port = 0;
        if (length < 2 || length > 128) return -Errno.EINVAL;
        var buffer = new byte[length];
        if (!p.Memory.TryRead(address, buffer)) return -Errno.EFAULT;
        int family = BinaryPrimitives.ReadUInt16LittleEndian(buffer);
        if (family != socket.Family) return -Errno.EAFNOSUPPORT;
        if (family == Socket.AfInet)
        {
            if (length < 16) return -Errno.EINVAL;
            ip = buffer.AsSpan(4, 4).ToArray();
        }
        else
        {
            if (length < 24) return -Errno.EINVAL;
            ip = buffer.AsSpan(8, 16).ToArray();
        }
        port = BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(2));
        return 0;
    }

    /// <summary>Writes a sockaddr to (addr, *addrlen) as Linux does: truncated to *addrlen, the full length stored back.</summary>
    private static long WriteSockAddr(LinuxProcess p, ulong address, ulong lengthAddress, byte[] sockaddr)
    {
        if (address == 0) return 0;
        if (!p.Memory.TryRead(lengthAddress, out int capacity)) return -Errno.EFAULT;
        if (capacity < 0) return -Errno.EINVAL;
        int n = Math.Min(capacity, sockaddr.Length);
        if (!p.Memory.TryWrite(address, sockaddr.AsSpan(0, n))) return -Errno.EFAULT;
        if (!p.Memory.TryWrite(lengthAddress, sockaddr.Length)) return -Errno.EFAULT;
        return 0;
    }

    private static long Bind(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        r = ReadSockAddr(p, socket, a.A1, a.Int(2), out var ip, out int port);
        if (r != 0) return r;
        if (socket.State != SocketState.Created) return -Errno.EINVAL;
        int bound = socket.Network.Bind(socket, port);
        if (bound != 0) return bound;
        socket.LocalAddress = ip;
        socket.State = SocketState.Bound;
        return 0;
    }

    private static long Listen(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        int backlog = Math.Clamp(a.Int(1), 0, 4096);
        switch (socket.State)
        {
            case SocketState.Listening:
                socket.Backlog = backlog;
                return 0;
            case SocketState.Created:
                int bound = socket.Network.Bind(socket, 0);
                if (bound != 0) return bound;
                socket.LocalAddress = new byte[socket.Family == Socket.AfInet ? 4 : 16];
                break;
            case SocketState.Bound:
                break;
            default:
                return -Errno.EINVAL;
        }
        socket.Backlog = backlog;
        socket.State = SocketState.Listening;
        socket.Network.Listen(socket);
        return 0;
    }

    private static long Connect(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        r = ReadSockAddr(p, socket, a.A1, a.Int(2), out var ip, out int port);
        if (r != 0) return r;
        if (socket.State == SocketState.Connected) return -Errno.EISCONN;
        if (socket.State == SocketState.Listening) return -Errno.EINVAL;
        if (IsLocal(ip)) return socket.Network.ConnectLocally(socket, port);
        p.NoticeOnce("net-connect", "p2preplay: the guest connects out; outgoing connections are not supported yet (ENETUNREACH)");
        return -Errno.ENETUNREACH;
    }

    /// <summary>127.0.0.0/8, ::1, ::ffff:127.x.x.x, or the unspecified address (which Linux connects to locally).</summary>
    private static bool IsLocal(byte[] ip)
    {
        if (ip.Length == 4) return ip[0] == 127 || ip.AsSpan().IndexOfAnyExcept((byte)0) < 0;
        if (ip.AsSpan(0, 15).IndexOfAnyExcept((byte)0) < 0) return ip[15] is 0 or 1;
        bool mapped = ip.AsSpan(0, 10).IndexOfAnyExcept((byte)0) < 0 && ip[10] == 0xFF && ip[11] == 0xFF;
        return mapped && (ip[12] == 127 || ip.AsSpan(12).IndexOfAnyExcept((byte)0) < 0);
    }

    private static long Accept(LinuxProcess p, in SyscallArgs a) => DoAccept(p, a.Int(0), a.A1, a.A2, 0);

    private static long Accept4(LinuxProcess p, in SyscallArgs a) => DoAccept(p, a.Int(0), a.A1, a.A2, a.Int(3));

    private static long DoAccept(LinuxProcess p, int fd, ulong address, ulong lengthAddress, int flags)
    {
        if ((flags & ~(SockNonBlock | SockCloexec)) != 0) return -Errno.EINVAL;
        long r = Lookup(p, fd, out var listener);
        if (r != 0) return r;
        if (listener.State != SocketState.Listening) return -Errno.EINVAL;
        if (address != 0)
        {
            if (!p.Memory.TryRead(lengthAddress, out int capacity)) return -Errno.EFAULT;
            if (capacity < 0) return -Errno.EINVAL;
        }
        bool ready = listener.Network.WaitFor(() => listener.PendingConnections > 0 || listener.State != SocketState.Listening,
            listener.NonBlocking ? 0 : null);
        if (listener.PendingConnections == 0)
        {
            if (listener.NonBlocking || listener.State != SocketState.Listening) return -Errno.EAGAIN;
            if (!ready) p.NoticeOnce("net-ended", "p2preplay: the guest waits for a connection, but the host network says nothing more will arrive (EAGAIN)");
            return -Errno.EAGAIN;
        }
        var pending = listener.PendingAccepts.Dequeue();
        listener.Network.TakePending(pending);
        var socket = Socket.FromPending(listener, pending, flags & SockNonBlock);
        int newFd = p.Files.Add(socket, (flags & SockCloexec) != 0);
        if (newFd < 0)
        {
            socket.Network.SocketReleased(socket);
            return newFd;
        }
        r = WriteSockAddr(p, address, lengthAddress, socket.SockAddr(socket.PeerAddress, socket.PeerPort));
        // Linux has accepted the connection by now; a bad address only shows as the error.
        if (r != 0)
        {
            p.Files.Close(newFd);
            return r;
        }
        return newFd;
    }

    private static long GetSockName(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        if (a.A1 == 0) return -Errno.EFAULT;
        int port = socket.State == SocketState.Connected ? socket.LocalPort : socket.BoundPort;
        return WriteSockAddr(p, a.A1, a.A2, socket.SockAddr(socket.LocalAddress, port));
    }

    private static long GetPeerName(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        if (socket.State != SocketState.Connected) return -Errno.ENOTCONN;
        if (a.A1 == 0) return -Errno.EFAULT;
        return WriteSockAddr(p, a.A1, a.A2, socket.SockAddr(socket.PeerAddress, socket.PeerPort));
    }

    private static long Shutdown(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        int how = a.Int(1);
        if (how is < 0 or > 2) return -Errno.EINVAL;
        if (socket.State != SocketState.Connected) return -Errno.ENOTCONN;
        if (how != 1) socket.ReadShut = true;
        if (how != 0 && !socket.WriteShut)
        {
            socket.WriteShut = true;
            socket.Network.ShutdownSend(socket);
        }
        return 0;
    }

    private static long CheckSendFlags(int flags) =>
        (flags & MsgOob) != 0 ? -Errno.EOPNOTSUPP : 0;

    private static long SendTo(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        r = CheckSendFlags(a.Int(3));
        if (r != 0) return r;
        if (a.A2 == 0) return socket.Send([]);
        if (!FileSyscallSupport.TryInBuffer(p, a.A1, a.A2, out var span, out long error)) return error;
        return socket.Send(span);
    }

    private static long RecvFrom(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        int flags = a.Int(3);
        if ((flags & MsgOob) != 0) return -Errno.EINVAL; // as Linux with no urgent data (never any here)
        if (a.A2 == 0) return socket.State == SocketState.Connected ? 0 : -Errno.ENOTCONN;
        if (!FileSyscallSupport.TryOutBuffer(p, a.A1, a.A2, out var span, out long error)) return error;
        // A stream socket leaves the source address alone; when given, *addrlen must at least be readable.
        if (a.A4 != 0 && !p.Memory.TryRead(a.A5, out int _)) return -Errno.EFAULT;
        return socket.Receive(p, span, (flags & MsgPeek) != 0, socket.NonBlocking || (flags & MsgDontWait) != 0);
    }

    /// <summary>struct msghdr's iovec list: (base, length) pairs, or -errno.</summary>
    private static long ReadMsgHdr(LinuxProcess p, ulong address, out (ulong Base, ulong Length)[] vectors)
    {
        vectors = [];
        if (!p.Memory.TryRead(address + 16, out ulong iov) || !p.Memory.TryRead(address + 24, out ulong count)) return -Errno.EFAULT;
        if (count > MaxIoVectors) return -Errno.EMSGSIZE;
        vectors = new (ulong, ulong)[count];
        long total = 0;
        for (int i = 0; i < (int)count; i++)
        {
            if (!p.Memory.TryRead(iov + (ulong)i * 16, out ulong b) || !p.Memory.TryRead(iov + (ulong)i * 16 + 8, out ulong l)) return -Errno.EFAULT;
            if ((long)l < 0) return -Errno.EINVAL;
            total += (long)l;
            if (total < 0) return -Errno.EINVAL;
            vectors[i] = (b, l);
        }
        return 0;
    }

    private static long SendMsg(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        r = CheckSendFlags(a.Int(2));
        if (r != 0) return r;
        r = ReadMsgHdr(p, a.A1, out var vectors);
        if (r != 0) return r;
        using var gathered = new MemoryStream();
        foreach (var (b, l) in vectors)
        {
            if (l == 0) continue;
            if (gathered.Length + (long)l > FileSyscallSupport.MaxTransfer) return -Errno.EMSGSIZE;
            var span = new byte[l];
            if (!p.Memory.TryRead(b, span)) return -Errno.EFAULT;
            gathered.Write(span);
        }
        return socket.Send(gathered.GetBuffer().AsSpan(0, (int)gathered.Length));
    }

    private static long RecvMsg(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        int flags = a.Int(2);
        if ((flags & MsgOob) != 0) return -Errno.EINVAL; // as Linux with no urgent data (never any here)
        r = ReadMsgHdr(p, a.A1, out var vectors);
        if (r != 0) return r;
        if (!p.Memory.IsAccessible(a.A1, 56, Protection.Write)) return -Errno.EFAULT;
        long total = 0;
        foreach (var (b, l) in vectors)
        {
            if (l == 0) continue;
            if (!p.Memory.IsAccessible(b, l, Protection.Write)) return -Errno.EFAULT;
            total += (long)l;
        }
        total = Math.Min(total, FileSyscallSupport.MaxTransfer);
        var buffer = new byte[total];
        long n = socket.Receive(p, buffer, (flags & MsgPeek) != 0, socket.NonBlocking || (flags & MsgDontWait) != 0);
        if (n < 0) return n;
        long done = 0;
        foreach (var (b, l) in vectors)
        {
            if (done >= n) break;
            int chunk = (int)Math.Min((long)l, n - done);
            p.Memory.TryWrite(b, buffer.AsSpan((int)done, chunk));
            done += chunk;
        }
        // A stream socket: no source address, no control data, no flags.
        p.Memory.TryWrite(a.A1 + 8, 0);
        p.Memory.TryWrite(a.A1 + 40, 0UL);
        p.Memory.TryWrite(a.A1 + 48, 0);
        return n;
    }

    private static bool KnownOption(int level, int name) => (level, name) switch
    {
        (SolSocket, SoReuseAddr or SoReusePort or SoKeepAlive or SoRcvBuf or SoSndBuf) => true,
        (IpProtoTcp, TcpNoDelay) => true,
        (IpProtoIpv6, Ipv6V6Only) => true,
        _ => false,
    };

    private static long SetSockOpt(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        int level = a.Int(1), name = a.Int(2), length = a.Int(4);
        if (level == SolSocket && name == SoLinger)
        {
            if (length < 8) return -Errno.EINVAL;
            return p.Memory.TryRead(a.A3, out long _) ? 0 : -Errno.EFAULT; // stored nowhere: close never lingers here
        }
        if (!KnownOption(level, name)) return level is SolSocket or IpProtoTcp or IpProtoIp or IpProtoIpv6 ? -Errno.ENOPROTOOPT : -Errno.EOPNOTSUPP;
        if (level == IpProtoIpv6 && socket.Family != Socket.AfInet6) return -Errno.ENOPROTOOPT;
        if (length < 4) return -Errno.EINVAL;
        if (!p.Memory.TryRead(a.A3, out int value)) return -Errno.EFAULT;
        if (name is SoRcvBuf or SoSndBuf && level == SolSocket)
            value = Math.Clamp(value, 1152, 0x3FFFFFFF) * 2; // as Linux: doubled for bookkeeping, with a floor
        else
            value = value != 0 ? 1 : 0;
        socket.SetOption(level, name, value);
        return 0;
    }

    private static long GetSockOpt(LinuxProcess p, in SyscallArgs a)
    {
        long r = Lookup(p, a.Int(0), out var socket);
        if (r != 0) return r;
        int level = a.Int(1), name = a.Int(2);
        if (!p.Memory.TryRead(a.A4, out int length)) return -Errno.EFAULT;
        if (length < 0) return -Errno.EINVAL;
        int value;
        switch (level, name)
        {
            case (SolSocket, SoError): value = 0; break;
            case (SolSocket, SoType): value = SockStream; break;
            case (SolSocket, SoDomain): value = socket.Family; break;
            case (SolSocket, SoProtocol): value = IpProtoTcp; break;
            case (SolSocket, SoAcceptConn): value = socket.State == SocketState.Listening ? 1 : 0; break;
            case (SolSocket, SoRcvBuf): value = socket.GetOption(level, name, 131072); break;
            case (SolSocket, SoSndBuf): value = socket.GetOption(level, name, 16384); break;
            default:
                if (level == IpProtoIpv6 && socket.Family != Socket.AfInet6) return -Errno.ENOPROTOOPT;
                if (!KnownOption(level, name)) return level is SolSocket or IpProtoTcp or IpProtoIp or IpProtoIpv6 ? -Errno.ENOPROTOOPT : -Errno.EOPNOTSUPP;
                value = socket.GetOption(level, name, 0);
                break;
        }
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        int n = Math.Min(length, 4);
        if (!p.Memory.TryWrite(a.A3, bytes[..n])) return -Errno.EFAULT;
        if (!p.Memory.TryWrite(a.A4, n)) return -Errno.EFAULT;
        return 0;
    }
}
