using System.Buffers.Binary;
using System.Text;
using P2PReplay.Linux.Abi;
using P2PReplay.Linux.Net;
using P2PReplay.Tests.Fakes;

namespace P2PReplay.Tests.Net;

/// <summary>The socket syscalls and readiness on plain memory (no KVM), over an in-memory network.</summary>
public sealed class SocketSyscallTests : IDisposable
{
    private const int Socket = 41, Connect = 42, Accept = 43, SendTo = 44, RecvFrom = 45, SendMsg = 46, RecvMsg = 47, Shutdown = 48,
        Bind = 49, Listen = 50, GetSockName = 51, GetPeerName = 52, SocketPair = 53, SetSockOpt = 54, GetSockOpt = 55, Accept4 = 288,
        Read = 0, Write = 1, Close = 3, Poll = 7, Select = 23, Fcntl = 72, EpollCreate1 = 291, EpollCtl = 233, EpollWait = 232;
    private const int AfInet = 2, AfInet6 = 10, SockStream = 1, SockDgram = 2, SockNonBlock = 0x800, SockCloexec = 0x80000;
    private const ulong Bad = 0xdead_0000_0000;

    private readonly InMemoryHostNetwork _net = new();
    private readonly TestGuest _g;

    public SocketSyscallTests() => _g = new TestGuest(host: new FakeHost { Network = _net });

    public void Dispose() => _g.Dispose();

    private ulong SockAddrIn(int port, byte a = 0, byte b = 0, byte c = 0, byte d = 0)
    {
        var s = new byte[16];
        BinaryPrimitives.WriteUInt16LittleEndian(s, AfInet);
        BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(2), (ushort)port);
        s[4] = a; s[5] = b; s[6] = c; s[7] = d;
        return _g.Put(s);
    }

    private int Listener(int port, bool nonBlocking = true)
    {
        long fd = _g.Call(Socket, AfInet, SockStream | (nonBlocking ? SockNonBlock : 0), 0);
        Assert.True(fd >= 3);
        Assert.Equal(0, _g.Call(Bind, fd, (long)SockAddrIn(port), 16));
        Assert.Equal(0, _g.Call(Listen, fd, 8));
        return (int)fd;
    }

    private int Accepted(int listener, long connection, string firstBytes = "")
    {
        _net.Enqueue(NetEvent.Connect(8080, connection, [192, 168, 1, 9], 5555));
        if (firstBytes.Length > 0) _net.Enqueue(NetEvent.Bytes(connection, Encoding.UTF8.GetBytes(firstBytes)));
        long fd = _g.Call(Accept4, listener, 0, 0, SockNonBlock);
        Assert.True(fd > listener, $"accept4 gave {fd}");
        return (int)fd;
    }

    private string ReadText(int fd, int max = 256)
    {
        ulong buf = _g.Alloc(max);
        long n = _g.Call(Read, fd, (long)buf, max);
        Assert.True(n >= 0, $"read gave {n}");
        return Encoding.UTF8.GetString(_g.Bytes(buf, (int)n));
    }

    [Fact]
    public void Listen_accept_read_write_close()
    {
        int l = Listener(8080);
        Assert.Contains(8080, _net.Listening);
        Assert.Equal(-Errno.EAGAIN, _g.Call(Accept4, l, 0, 0, 0)); // nothing has arrived
        ulong peer = _g.Alloc(16), len = _g.Put(BitConverter.GetBytes(16));
        _net.Enqueue(NetEvent.Connect(8080, 7, [192, 168, 1, 9], 5555));
        _net.Enqueue(NetEvent.Bytes(7, "hello "u8.ToArray()));
        long c = _g.Call(Accept, l, (long)peer, (long)len);
        Assert.Equal(l + 1, c);
        Assert.Equal(16, _g.Read<int>(len));
        Assert.Equal(new byte[] { 2, 0, 0x15, 0xB3, 192, 168, 1, 9 }, _g.Bytes(peer, 8));
        Assert.Equal("hello ", ReadText((int)c));
        _net.Enqueue(NetEvent.Bytes(7, "world"u8.ToArray()));
        // Blocking read of an empty socket takes host events until bytes come.
        Assert.Equal("world", ReadText((int)c));
        Assert.Equal(5, _g.Call(Write, c, (long)_g.Put("reply"u8), 5));
        Assert.Equal("reply", _net.SentText(7));
        _net.Enqueue(NetEvent.Closed(7));
        Assert.Equal("", ReadText((int)c)); // end of stream
        Assert.Equal(0, _g.Call(Close, c));
        Assert.Contains(7L, _net.ClosedByGuest);
        Assert.Equal(0, _g.Call(Close, l));
        Assert.DoesNotContain(8080, _net.Listening);
    }

    [Fact]
    public void Names_options_and_nonblocking_reads()
    {
        int l = Listener(8080);
        ulong name = _g.Alloc(16), len = _g.Put(BitConverter.GetBytes(16));
        Assert.Equal(0, _g.Call(GetSockName, l, (long)name, (long)len));
        Assert.Equal(8080, BinaryPrimitives.ReadUInt16BigEndian(_g.Bytes(name + 2, 2)));
        Assert.Equal(-Errno.ENOTCONN, _g.Call(GetPeerName, l, (long)name, (long)len));
        int c = Accepted(l, 1);
        ulong shortLen = _g.Put(BitConverter.GetBytes(4));
        Assert.Equal(0, _g.Call(GetPeerName, c, (long)name, (long)shortLen));
        Assert.Equal(16, _g.Read<int>(shortLen)); // truncated, the full length reported

        ulong one = _g.Put(BitConverter.GetBytes(1)), val = _g.Alloc(4), vlen = _g.Put(BitConverter.GetBytes(4));
        Assert.Equal(0, _g.Call(SetSockOpt, c, 6, 1, (long)one, 4)); // TCP_NODELAY
        Assert.Equal(0, _g.Call(GetSockOpt, c, 6, 1, (long)val, (long)vlen));
        Assert.Equal(1, _g.Read<int>(val));
        Assert.Equal(0, _g.Call(SetSockOpt, l, 1, 2, (long)one, 4)); // SO_REUSEADDR
        Assert.Equal(0, _g.Call(SetSockOpt, c, 1, 8, (long)_g.Put(BitConverter.GetBytes(4096)), 4)); // SO_RCVBUF
        Assert.Equal(0, _g.Call(GetSockOpt, c, 1, 8, (long)val, (long)vlen));
        Assert.Equal(8192, _g.Read<int>(val));
        Assert.Equal(0, _g.Call(GetSockOpt, c, 1, 4, (long)val, (long)vlen)); // SO_ERROR
        Assert.Equal(0, _g.Read<int>(val));
        Assert.Equal(-Errno.ENOPROTOOPT, _g.Call(SetSockOpt, c, 1, 999, (long)one, 4));

        ulong buf = _g.Alloc(16);
        Assert.Equal(-Errno.EAGAIN, _g.Call(RecvFrom, c, (long)buf, 16, 0, 0, 0));
        _net.Enqueue(NetEvent.Bytes(1, "abc"u8.ToArray()));
        Assert.Equal(3, _g.Call(RecvFrom, c, (long)buf, 16, 2 /* MSG_PEEK */, 0, 0));
        Assert.Equal(2, _g.Call(RecvFrom, c, (long)buf, 2, 0, 0, 0));
        Assert.Equal("ab", Encoding.UTF8.GetString(_g.Bytes(buf, 2)));
        Assert.Equal(1, _g.Call(RecvFrom, c, (long)buf, 16, 0, 0, 0));
        Assert.Equal(3, _g.Call(SendTo, c, (long)_g.Put("xyz"u8), 3, 0x4000, 0, 0));
        Assert.Equal(0, _g.Call(Shutdown, c, 1));
        Assert.Contains(1L, _net.ShutByGuest);
        Assert.Equal(-Errno.EPIPE, _g.Call(Write, c, (long)_g.Put("x"u8), 1));
    }

    [Fact]
    public void Sendmsg_and_recvmsg_gather_and_scatter()
    {
        int c = Accepted(Listener(8080), 3, "0123456789");
        ulong a = _g.Alloc(4), b = _g.Alloc(16);
        ulong iov = _g.Alloc(32);
        _g.Memory.TryWrite(iov, a); _g.Memory.TryWrite(iov + 8, 4UL); _g.Memory.TryWrite(iov + 16, b); _g.Memory.TryWrite(iov + 24, 16UL);
        ulong msg = _g.Alloc(56);
        _g.Memory.TryWrite(msg + 16, iov); _g.Memory.TryWrite(msg + 24, 2UL);
        Assert.Equal(10, _g.Call(RecvMsg, c, (long)msg, 0));
        Assert.Equal("0123", Encoding.UTF8.GetString(_g.Bytes(a, 4)));
        Assert.Equal("456789", Encoding.UTF8.GetString(_g.Bytes(b, 6)));
        Assert.Equal(20, _g.Call(SendMsg, c, (long)msg, 0));
        Assert.Equal(20, _net.Sent[3].Length);
    }

    [Fact]
    public void Poll_select_and_epoll_see_network_readiness()
    {
        int l = Listener(8080);
        ulong pfd = _g.Alloc(8);
        _g.Memory.TryWrite(pfd, l); _g.Memory.TryWrite(pfd + 4, (short)1);
        Assert.Equal(0, _g.Call(Poll, (long)pfd, 1, 0));
        _net.Enqueue(NetEvent.Connect(8080, 5, [1, 2, 3, 4], 99));
        Assert.Equal(1, _g.Call(Poll, (long)pfd, 1, 1000));
        Assert.Equal(1, _g.Read<short>(pfd + 6));
        long c = _g.Call(Accept4, l, 0, 0, SockNonBlock | SockCloexec);

        long ep = _g.Call(EpollCreate1, 0x80000);
        Assert.True(ep > 0);
        ulong ev = _g.Alloc(12);
        _g.Memory.TryWrite(ev, 0x1u | 0x2000u); _g.Memory.TryWrite(ev + 4, 77UL);
        Assert.Equal(0, _g.Call(EpollCtl, ep, 1, c, (long)ev));
        Assert.Equal(-Errno.EEXIST, _g.Call(EpollCtl, ep, 1, c, (long)ev));
        ulong outEv = _g.Alloc(12 * 4);
        Assert.Equal(0, _g.Call(EpollWait, ep, (long)outEv, 4, 0));
        _net.Enqueue(NetEvent.Bytes(5, "hi"u8.ToArray()));
        _net.Enqueue(NetEvent.Closed(5));
        Assert.Equal(1, _g.Call(EpollWait, ep, (long)outEv, 4, -1));
        Assert.Equal(0x1u | 0x2000u, _g.Read<uint>(outEv));
        Assert.Equal(77UL, _g.Read<ulong>(outEv + 4));

        ulong set = _g.Alloc(128);
        _g.Memory.TryWrite(set, 1UL << (int)c);
        Assert.Equal(1, _g.Call(Select, c + 1, (long)set, 0, 0, 0));
        Assert.Equal(2, _g.Call(Read, c, (long)_g.Alloc(8), 8));
        Assert.Equal(0, _g.Call(Read, c, (long)_g.Alloc(8), 8));
        Assert.Equal(0, _g.Call(EpollCtl, ep, 2, c, 0));
        Assert.Equal(-Errno.ENOENT, _g.Call(EpollCtl, ep, 2, c, 0));
    }

    [Fact]
    public void A_timed_wait_ends_while_unrelated_events_keep_arriving()
    {
        int l = Listener(8080);
        int a = Accepted(l, 1), b = Accepted(l, 2);
        ((FakeHost)_g.Host).ClockStep = 1_000_000; // each clock read: 1 ms later
        _net.OnPoll = net => net.Enqueue(NetEvent.Bytes(2, [0]));
        ulong pfd = _g.Alloc(8);
        _g.Memory.TryWrite(pfd, a); _g.Memory.TryWrite(pfd + 4, (short)1);
        int before = _net.Polls;
        Assert.Equal(0, _g.Call(Poll, (long)pfd, 1, 20));
        Assert.InRange(_net.Polls - before, 15, 25);
        Assert.Equal(_net.Polls - before, (int)_g.Call(16 /* ioctl */, b, 0x541B /* FIONREAD */, (long)pfd) == 0 ? _g.Read<int>(pfd) : -1);
    }

    [Fact]
    public void Connections_to_a_port_nobody_listens_on_are_refused()
    {
        int l = Listener(8080);
        _net.Enqueue(NetEvent.Connect(9999, 4, [1, 1, 1, 1], 1));
        Assert.Equal(-Errno.EAGAIN, _g.Call(Accept4, l, 0, 0, 0));
        Assert.Contains(4L, _net.ClosedByGuest);
        // A connection that was never accepted is refused when the listener closes.
        _net.Enqueue(NetEvent.Connect(8080, 6, [1, 1, 1, 1], 1));
        ulong pfd = _g.Alloc(8);
        _g.Memory.TryWrite(pfd, l); _g.Memory.TryWrite(pfd + 4, (short)1);
        Assert.Equal(1, _g.Call(Poll, (long)pfd, 1, 0));
        Assert.Equal(0, _g.Call(Close, l));
        Assert.Contains(6L, _net.ClosedByGuest);
    }

    [Fact]
    public void Hostile_arguments_give_errno()
    {
        Assert.Equal(-Errno.EAFNOSUPPORT, _g.Call(Socket, 1, SockStream, 0)); // AF_UNIX
        Assert.Equal(-Errno.ESOCKTNOSUPPORT, _g.Call(Socket, AfInet, SockDgram, 0));
        Assert.Equal(-Errno.EPROTONOSUPPORT, _g.Call(Socket, AfInet6, SockStream, 17));
        Assert.Equal(-Errno.EINVAL, _g.Call(Socket, AfInet, SockStream | 0x10000, 0));
        Assert.Equal(-Errno.ENOSYS, _g.Call(SocketPair, 1, SockStream, 0, (long)_g.Alloc(8)));
        long s = _g.Call(Socket, AfInet, SockStream, 0);
        Assert.Equal(-Errno.EFAULT, _g.Call(Bind, s, (long)Bad, 16));
        Assert.Equal(-Errno.EINVAL, _g.Call(Bind, s, (long)SockAddrIn(1), 8));
        Assert.Equal(-Errno.EINVAL, _g.Call(Bind, s, (long)SockAddrIn(1), -1));
        Assert.Equal(-Errno.EAFNOSUPPORT, _g.Call(Bind, _g.Call(Socket, AfInet6, SockStream, 0), (long)SockAddrIn(1), 28));
        Assert.Equal(-Errno.EBADF, _g.Call(Bind, 999, (long)SockAddrIn(1), 16));
        Assert.Equal(-Errno.EBADF, _g.Call(Listen, -1, 1));
        Assert.Equal(-Errno.ENOTSOCK, _g.Call(Listen, 1, 1)); // stdout
        Assert.Equal(-Errno.EINVAL, _g.Call(Accept, s, 0, 0)); // not listening
        Assert.Equal(-Errno.ENOTCONN, _g.Call(Read, s, (long)_g.Alloc(8), 8));
        Assert.Equal(-Errno.EPIPE, _g.Call(Write, s, (long)_g.Alloc(8), 8));
        Assert.Equal(-Errno.EPIPE, _g.Call(SendTo, s, (long)_g.Alloc(8), 0, 0, 0, 0));
        Assert.Equal(-Errno.ENOTCONN, _g.Call(Shutdown, s, 2));
        Assert.Equal(-Errno.ENETUNREACH, _g.Call(Connect, s, (long)SockAddrIn(80, 1, 1, 1, 1), 16));
        Assert.Equal(-Errno.EFAULT, _g.Call(Connect, s, (long)Bad, 16));

        int l = Listener(8080);
        Assert.Equal(-Errno.EADDRINUSE, _g.Call(Bind, _g.Call(Socket, AfInet, SockStream, 0), (long)SockAddrIn(8080), 16));
        Assert.Equal(-Errno.EINVAL, _g.Call(Bind, l, (long)SockAddrIn(8081), 16)); // bound already
        Assert.Equal(-Errno.EINVAL, _g.Call(Accept4, l, 0, 0, 0x1));
        Assert.Equal(-Errno.EFAULT, _g.Call(Accept, l, (long)_g.Alloc(16), (long)Bad));
        Assert.Equal(-Errno.EFAULT, _g.Call(GetSockName, l, (long)Bad, (long)_g.Put(BitConverter.GetBytes(16))));
        Assert.Equal(-Errno.EINVAL, _g.Call(GetSockName, l, (long)_g.Alloc(16), (long)_g.Put(BitConverter.GetBytes(-1))));
        Assert.Equal(-Errno.EFAULT, _g.Call(GetSockOpt, l, 1, 2, (long)_g.Alloc(4), (long)Bad));
        Assert.Equal(-Errno.EINVAL, _g.Call(SetSockOpt, l, 1, 2, (long)_g.Alloc(4), 2));
        Assert.Equal(-Errno.EFAULT, _g.Call(SetSockOpt, l, 1, 2, (long)Bad, 4));

        int c = Accepted(l, 9, "data");
        Assert.Equal(-Errno.EFAULT, _g.Call(Read, c, (long)Bad, 8));
        Assert.Equal(-Errno.EFAULT, _g.Call(RecvFrom, c, (long)Bad, 8, 0, 0, 0));
        Assert.Equal(-Errno.EFAULT, _g.Call(SendTo, c, (long)Bad, 8, 0, 0, 0));
        Assert.Equal(-Errno.EINVAL, _g.Call(RecvFrom, c, (long)_g.Alloc(8), 8, 1 /* MSG_OOB */, 0, 0));
        Assert.Equal(-Errno.EFAULT, _g.Call(RecvMsg, c, (long)Bad, 0));
        ulong msg = _g.Alloc(56);
        _g.Memory.TryWrite(msg + 16, Bad); _g.Memory.TryWrite(msg + 24, 1UL);
        Assert.Equal(-Errno.EFAULT, _g.Call(SendMsg, c, (long)msg, 0));
        _g.Memory.TryWrite(msg + 24, 5000UL);
        Assert.Equal(-Errno.EMSGSIZE, _g.Call(RecvMsg, c, (long)msg, 0));
        Assert.Equal(-Errno.EINVAL, _g.Call(Shutdown, c, 3));
        Assert.Equal("data", ReadText(c)); // the socket still works after all that

        long ep = _g.Call(EpollCreate1, 0);
        Assert.Equal(-Errno.EINVAL, _g.Call(EpollCreate1, 1));
        Assert.Equal(-Errno.EFAULT, _g.Call(EpollCtl, ep, 1, c, (long)Bad));
        Assert.Equal(-Errno.EINVAL, _g.Call(EpollCtl, ep, 1, ep, (long)_g.Alloc(12)));
        Assert.Equal(-Errno.EINVAL, _g.Call(EpollCtl, c, 1, l, (long)_g.Alloc(12)));
        Assert.Equal(-Errno.EBADF, _g.Call(EpollCtl, ep, 1, 555, (long)_g.Alloc(12)));
        Assert.Equal(-Errno.EINVAL, _g.Call(EpollCtl, ep, 9, c, (long)_g.Alloc(12)));
        Assert.Equal(-Errno.EINVAL, _g.Call(EpollWait, ep, (long)_g.Alloc(12), 0, 0));
        Assert.Equal(-Errno.EFAULT, _g.Call(EpollWait, ep, (long)Bad, 1, 0));
        Assert.Equal(-Errno.EINVAL, _g.Call(EpollWait, c, (long)_g.Alloc(12), 1, 0));
        Assert.Equal(-Errno.EBADF, _g.Call(EpollWait, 555, (long)_g.Alloc(12), 1, 0));
        Assert.Equal(0, _g.Call(Fcntl, c, 4 /* F_SETFL */, 0));
        Assert.Equal(0x2, _g.Call(Fcntl, c, 3 /* F_GETFL */) & 0x803);
    }

    [Fact]
    public void Random_arguments_never_throw()
    {
        var random = new Random(5);
        int l = Listener(8080);
        Accepted(l, 1, "x");
        int[] numbers = [Socket, Connect, Accept, SendTo, RecvFrom, SendMsg, RecvMsg, Shutdown, Bind, Listen, GetSockName, GetPeerName,
            SetSockOpt, GetSockOpt, Accept4, EpollCreate1, EpollCtl, EpollWait];
        ulong[] pointers = [0, Bad, _g.Alloc(64), ulong.MaxValue - 3, 0x100000 + (4UL << 20) - 2];
        for (int i = 0; i < 5000; i++)
        {
            int n = numbers[random.Next(numbers.Length)];
            ulong Arg() => random.Next(4) switch
            {
                0 => (ulong)random.Next(-2, 8),
                1 => pointers[random.Next(pointers.Length)],
                2 => (ulong)random.NextInt64(),
                _ => (ulong)random.Next(0, 64),
            };
            if (random.Next(10) == 0) _net.Enqueue(NetEvent.Bytes(1, [1, 2, 3]));
            long r = _g.Call(n, Arg(), Arg(), Arg(), Arg(), Arg(), Arg());
            Assert.True(r >= -4095, $"syscall {n} gave {r}");
        }
    }

    [Fact]
    public void Ipv6_listener_vectors_fionread_fstat_and_dup()
    {
        long l = _g.Call(Socket, AfInet6, SockStream | SockNonBlock, 0);
        var sa6 = new byte[28];
        BinaryPrimitives.WriteUInt16LittleEndian(sa6, AfInet6);
        BinaryPrimitives.WriteUInt16BigEndian(sa6.AsSpan(2), 8080);
        Assert.Equal(0, _g.Call(Bind, l, (long)_g.Put(sa6), 28));
        Assert.Equal(0, _g.Call(Listen, l, 1));
        _net.Enqueue(NetEvent.Connect(8080, 1, [10, 1, 2, 3], 1234));
        _net.Enqueue(NetEvent.Bytes(1, "abcdef"u8.ToArray()));
        ulong peer = _g.Alloc(28), len = _g.Put(BitConverter.GetBytes(28));
        long c = _g.Call(Accept4, l, (long)peer, (long)len, 0);
        Assert.True(c > l);
        Assert.Equal(28, _g.Read<int>(len));
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 1, 2, 3 }, _g.Bytes(peer + 8, 16)); // ::ffff:10.1.2.3

        ulong n = _g.Alloc(4);
        Assert.Equal(0, _g.Call(16 /* ioctl */, c, 0x541B /* FIONREAD */, (long)n));
        Assert.Equal(6, _g.Read<int>(n));
        ulong st = _g.Alloc(144);
        Assert.Equal(0, _g.Call(5 /* fstat */, c, (long)st));
        Assert.Equal(0xC000u, _g.Read<uint>(st + 24) & 0xF000u); // S_IFSOCK

        ulong a = _g.Alloc(2), b = _g.Alloc(8), iov = _g.Alloc(32);
        _g.Memory.TryWrite(iov, a); _g.Memory.TryWrite(iov + 8, 2UL); _g.Memory.TryWrite(iov + 16, b); _g.Memory.TryWrite(iov + 24, 8UL);
        Assert.Equal(6, _g.Call(19 /* readv */, c, (long)iov, 2));
        Assert.Equal("cdef", Encoding.UTF8.GetString(_g.Bytes(b, 4)));
        Assert.Equal(10, _g.Call(20 /* writev */, c, (long)iov, 2));

        long d = _g.Call(32 /* dup */, c);
        Assert.Equal(0, _g.Call(Close, c));
        Assert.DoesNotContain(1L, _net.ClosedByGuest); // still open through the duplicate
        Assert.Equal(3, _g.Call(Write, d, (long)_g.Put("end"u8), 3));
        Assert.Equal(0, _g.Call(Close, d));
        Assert.Contains(1L, _net.ClosedByGuest);
        Assert.Equal(13, _net.Sent[1].Length);
    }

    [Fact]
    public void Epoll_oneshot_and_epollout()
    {
        int c = Accepted(Listener(8080), 1);
        long ep = _g.Call(EpollCreate1, 0);
        ulong ev = _g.Alloc(12), outEv = _g.Alloc(24);
        _g.Memory.TryWrite(ev, 0x1u | 0x4u | (1u << 30)); _g.Memory.TryWrite(ev + 4, 5UL);
        Assert.Equal(0, _g.Call(EpollCtl, ep, 1, c, (long)ev));
        Assert.Equal(1, _g.Call(EpollWait, ep, (long)outEv, 2, 0));
        Assert.Equal(0x4u, _g.Read<uint>(outEv)); // writable, nothing to read
        Assert.Equal(0, _g.Call(EpollWait, ep, (long)outEv, 2, 0)); // one-shot: disarmed
        Assert.Equal(0, _g.Call(EpollCtl, ep, 3, c, (long)ev)); // re-armed
        _net.Enqueue(NetEvent.Bytes(1, [1]));
        Assert.Equal(1, _g.Call(EpollWait, ep, (long)outEv, 2, 0));
        Assert.Equal(0x5u, _g.Read<uint>(outEv));
        Assert.Equal(0, _g.Call(Close, c));
        Assert.Equal(0, _g.Call(EpollWait, ep, (long)outEv, 2, 0)); // a closed descriptor leaves the interest list
    }

    [Fact]
    public void Edge_triggered_epoll_reports_changes_and_new_input_only()
    {
        int c = Accepted(Listener(8080), 1);
        long ep = _g.Call(EpollCreate1, 0);
        ulong ev = _g.Alloc(12), outEv = _g.Alloc(24);
        _g.Memory.TryWrite(ev, 0x1u | 0x4u | 0x2000u | (1u << 31)); _g.Memory.TryWrite(ev + 4, 5UL);
        Assert.Equal(0, _g.Call(EpollCtl, ep, 1, c, (long)ev));
        Assert.Equal(1, _g.Call(EpollWait, ep, (long)outEv, 2, 0));
        Assert.Equal(0x4u, _g.Read<uint>(outEv));
        Assert.Equal(0, _g.Call(EpollWait, ep, (long)outEv, 2, 0)); // still writable: no new edge
        _net.Enqueue(NetEvent.Bytes(1, [1]));
        Assert.Equal(1, _g.Call(EpollWait, ep, (long)outEv, 2, 0));
        Assert.Equal(0x5u, _g.Read<uint>(outEv));
        Assert.Equal(0, _g.Call(EpollWait, ep, (long)outEv, 2, 0)); // unread byte, but no new input
        _net.Enqueue(NetEvent.Bytes(1, [2]));
        Assert.Equal(1, _g.Call(EpollWait, ep, (long)outEv, 2, 0)); // more input: a new edge
        _net.Enqueue(NetEvent.Closed(1));
        Assert.Equal(1, _g.Call(EpollWait, ep, (long)outEv, 2, 0));
        Assert.Equal(0x2005u, _g.Read<uint>(outEv));
    }

    [Fact]
    public void A_level_triggered_wait_with_a_ready_descriptor_still_sees_new_input()
    {
        int l = Listener(8080);
        int c = Accepted(l, 1);
        ulong pfd = _g.Alloc(16);
        _g.Memory.TryWrite(pfd, c); _g.Memory.TryWrite(pfd + 4, (short)(1 | 4));
        _g.Memory.TryWrite(pfd + 8, l); _g.Memory.TryWrite(pfd + 12, (short)1);
        _net.Enqueue(NetEvent.Bytes(1, [1]));
        _net.Enqueue(NetEvent.Connect(8080, 2, [1, 1, 1, 1], 2));
        Assert.Equal(2, _g.Call(Poll, (long)pfd, 2, -1));
        Assert.Equal(5, _g.Read<short>(pfd + 6));
        Assert.Equal(1, _g.Read<short>(pfd + 14));
    }

    [Fact]
    public void Connect_reaches_the_guests_own_listener()
    {
        int l = Listener(8080);
        long c = _g.Call(Socket, AfInet, SockStream, 0);
        Assert.Equal(-Errno.ECONNREFUSED, _g.Call(Connect, c, (long)SockAddrIn(8081, 127, 0, 0, 1), 16));
        Assert.Equal(-Errno.ENETUNREACH, _g.Call(Connect, c, (long)SockAddrIn(8080, 10, 0, 0, 1), 16));
        Assert.Equal(0, _g.Call(Connect, c, (long)SockAddrIn(8080, 127, 0, 0, 1), 16));
        Assert.Equal(-Errno.EISCONN, _g.Call(Connect, c, (long)SockAddrIn(8080, 127, 0, 0, 1), 16));
        Assert.Equal(5, _g.Call(Write, c, (long)_g.Put("early"u8), 5)); // waits at the listener until accepted
        ulong peer = _g.Alloc(16), len = _g.Put(BitConverter.GetBytes(16));
        long s = _g.Call(Accept, l, (long)peer, (long)len);
        Assert.True(s > c);
        Assert.Equal(new byte[] { 127, 0, 0, 1 }, _g.Bytes(peer + 4, 4));
        Assert.Equal("early", ReadText((int)s));
        Assert.Equal(4, _g.Call(Write, s, (long)_g.Put("back"u8), 4));
        Assert.Equal("back", ReadText((int)c));
        ulong name = _g.Alloc(16);
        Assert.Equal(0, _g.Call(GetPeerName, c, (long)name, (long)_g.Put(BitConverter.GetBytes(16))));
        Assert.Equal(8080, BinaryPrimitives.ReadUInt16BigEndian(_g.Bytes(name + 2, 2)));
        Assert.Equal(0, _g.Call(Shutdown, c, 1));
        ulong pfd = _g.Alloc(8);
        _g.Memory.TryWrite(pfd, (int)s); _g.Memory.TryWrite(pfd + 4, (short)(1 | 0x2000));
        Assert.Equal(1, _g.Call(Poll, (long)pfd, 1, 0));
        Assert.Equal(1 | 0x2000, _g.Read<short>(pfd + 6)); // the client's FIN
        Assert.Equal("", ReadText((int)s));
        Assert.Equal(0, _g.Call(Close, s));
        Assert.Equal("", ReadText((int)c));
        Assert.Equal(-Errno.EPIPE, _g.Call(SendTo, c, (long)_g.Put("x"u8), 1, 0, 0, 0));
        Assert.Empty(_net.Sent); // nothing left the VM
        Assert.Empty(_net.ClosedByGuest);

        // A client whose connection is never accepted reads end-of-file once the listener closes.
        long c2 = _g.Call(Socket, AfInet, SockStream, 0);
        Assert.Equal(0, _g.Call(Connect, c2, (long)SockAddrIn(8080), 16));
        Assert.Equal(0, _g.Call(Close, l));
        Assert.Equal("", ReadText((int)c2));
    }

    [Fact]
    public void A_client_sending_more_than_the_guest_reads_is_disconnected()
    {
        _g.Process.Network.MaxUnreadBytes = 10;
        int c = Accepted(Listener(8080), 1, "12345678");
        _net.Enqueue(NetEvent.Bytes(1, "abc"u8.ToArray()));
        ulong pfd = _g.Alloc(8);
        _g.Memory.TryWrite(pfd, c); _g.Memory.TryWrite(pfd + 4, (short)(1 | 0x2000));
        Assert.Equal(1, _g.Call(Poll, (long)pfd, 1, 0));
        Assert.Equal(1 | 0x2000, _g.Read<short>(pfd + 6));
        Assert.Contains(1L, _net.ClosedByGuest);
        Assert.Equal("12345678", ReadText(c)); // what arrived before the limit
        Assert.Equal("", ReadText(c));
    }
}
