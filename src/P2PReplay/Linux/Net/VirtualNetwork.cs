using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.Net;

/// <summary>
/// The guest's view of the network: its sockets, listening ports and connections. It changes only by guest syscalls and
/// by batches of <see cref="NetEvent"/>s taken from the host at syscalls (<see cref="Pump"/>), so it is a pure function
/// of the guest's calls and the logged batches. No host socket ever reaches the guest.
/// </summary>
/// <remarks>The host network is looked up at every use: a host that switches from replay to live (a promoted replica)
/// hands out its current one.</remarks>
public sealed class VirtualNetwork(Func<IHostNetwork> host, Func<long>? monotonicClock = null)
{
    public const int EphemeralFirst = 32768, EphemeralLast = 60999;

    private readonly Dictionary<int, Socket> _listeners = [];
    private readonly Dictionary<long, Socket> _connections = [];
    private readonly HashSet<int> _boundPorts = [];
    private int _nextEphemeral = EphemeralFirst;
    private ulong _nextInode = 0x10000;

    public IHostNetwork Host => host();

    /// <summary>
    /// Unread bytes one connection may hold in the VMM; a client that sends more than the guest reads is disconnected
    /// there (the guest reads what it got, then end of stream), so no client can make the VMM's memory grow without end.
    /// </summary>
    public int MaxUnreadBytes { get; set; } = 64 << 20;

    /// <summary>Sockets that exist (not yet released): waits consult the network only while there are some.</summary>
    public int LiveSockets { get; private set; }

    /// <summary>Batches taken from the host (each is one logged input when recording).</summary>
    public long Pumps { get; private set; }

    internal ulong NextInode() => _nextInode++;

    // Snapshots: the network's tables and counters.
    internal Dictionary<int, Socket> Listeners => _listeners;

    internal Dictionary<long, Socket> Connections => _connections;

    internal HashSet<int> BoundPorts => _boundPorts;

    internal Dictionary<long, PendingConnection> PendingByConnection => _pendingByConnection;

    internal (int NextEphemeral, ulong NextInode, int LiveSockets, long Pumps, long NextLocalConnection) Counters
    {
        get => (_nextEphemeral, _nextInode, LiveSockets, Pumps, _nextLocalConnection);
        set => (_nextEphemeral, _nextInode, LiveSockets, Pumps, _nextLocalConnection) = value;
    }

    /// <summary>A fresh inode number for anonymous files (epoll).</summary>
    public ulong NextInodePublic() => _nextInode++;

    internal void SocketCreated() => LiveSockets++;

    internal void SocketReleased(Socket socket)
    {
        LiveSockets--;
        if (socket.BoundPort != 0) _boundPorts.Remove(socket.BoundPort);
        if (socket.State == SocketState.Listening && _listeners.Remove(socket.BoundPort))
        {
            Host.Unlisten(socket.BoundPort);
            foreach (var pending in socket.PendingAccepts)
            {
                if (pending.LocalClient is { } client)
                {
                    client.PeerClosed = true; // refused after all: the client reads end-of-file
                    client.PendingAtListener = null;
                    client.InputGeneration++;
                }
                else
                {
                    Host.Close(pending.Connection);
                }
            }
            socket.PendingAccepts.Clear();
        }
        if (socket.State == SocketState.Connected && socket.Connection >= 0 && _connections.Remove(socket.Connection)) Host.Close(socket.Connection);
        if (socket.LocalPeer is { } peer)
        {
            peer.PeerClosed = true;
            peer.InputGeneration++;
        }
        if (socket.PendingAtListener is { } waiting) waiting.PeerClosed = true;
        socket.State = SocketState.Closed;
    }

    /// <summary>bind: a port (0: a fresh ephemeral one). 0 or -errno.</summary>
    internal int Bind(Socket socket, int port)
    {
        if (port == 0)
        {
            for (int tries = 0; tries <= EphemeralLast - EphemeralFirst; tries++)
            {
                int candidate = _nextEphemeral;
                _nextEphemeral = candidate == EphemeralLast ? EphemeralFirst : candidate + 1;
                if (!_boundPorts.Contains(candidate)) { port = candidate; break; }
            }
            if (port == 0) return -Errno.EADDRINUSE;
        }
        else if (_boundPorts.Contains(port)) return -Errno.EADDRINUSE;
        _boundPorts.Add(port);
        socket.BoundPort = port;
        return 0;
    }

    internal void Listen(Socket socket)
    {
        _listeners[socket.BoundPort] = socket;
        Host.Listen(socket.BoundPort);
    }

    internal void Accepted(Socket connection) => _connections[connection.Connection] = connection;

    private long _nextLocalConnection = -1;

    /// <summary>
    /// connect() to a port the guest itself listens on: the client is connected at once and waits at the listener to
    /// be accepted; nothing reaches the host. 0, or -ECONNREFUSED when nobody listens there.
    /// </summary>
    internal int ConnectLocally(Socket client, int port)
    {
        if (!_listeners.TryGetValue(port, out var listener)) return -Errno.ECONNREFUSED;
        if (client.BoundPort == 0)
        {
            int bound = Bind(client, 0);
            if (bound != 0) return bound;
        }
        var loopback = client.Family == Socket.AfInet ? new byte[] { 127, 0, 0, 1 } : [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        client.State = SocketState.Connected;
        client.LocalPort = client.BoundPort;
        client.LocalAddress = loopback;
        client.PeerAddress = loopback;
        client.PeerPort = port;
        client.Connection = _nextLocalConnection--;
        var pending = new PendingConnection(client.Connection, loopback, client.BoundPort) { LocalClient = client };
        client.PendingAtListener = pending;
        listener.PendingAccepts.Enqueue(pending);
        listener.InputGeneration++;
        return 0;
    }

    internal void Send(Socket socket, ReadOnlySpan<byte> data) => Host.Send(socket.Connection, data);

    internal void ShutdownSend(Socket socket)
    {
        if (socket.Connection >= 0)
        {
            Host.ShutdownSend(socket.Connection);
        }
        else if (socket.LocalPeer is { } peer)
        {
            peer.PeerClosed = true;
            peer.InputGeneration++;
        }
        else if (socket.PendingAtListener is { } pending)
        {
            pending.PeerClosed = true;
        }
    }

    /// <summary>Takes one batch of events from the host and applies it. True when the batch was not empty.</summary>
    public bool Pump(long timeoutNs)
    {
        Pumps++;
        var events = Host.Poll(timeoutNs);
        foreach (var e in events) Apply(e);
        return events.Count > 0;
    }

    private void Apply(in NetEvent e)
    {
        switch (e.Kind)
        {
            case NetEventKind.Connected:
                if (_listeners.TryGetValue(e.Port, out var listener) && !_connections.ContainsKey(e.Connection)
                    && listener.PendingAccepts.Count < Math.Max(1, listener.Backlog) * 2 + 8)
                {
                    var pending = new PendingConnection(e.Connection, e.Data ?? [], e.PeerPort);
                    listener.PendingAccepts.Enqueue(pending);
                    listener.InputGeneration++;
                    _pendingByConnection[e.Connection] = pending;
                }
                else
                {
                    Host.Close(e.Connection); // nobody listens there (any more): refused
                }
                break;
            case NetEventKind.Data:
                int length = e.Data?.Length ?? 0;
                if (_connections.TryGetValue(e.Connection, out var socket))
                {
                    if (socket.PeerClosed) break;
                    if ((long)socket.BytesQueued + length > MaxUnreadBytes)
                    {
                        socket.PeerClosed = true;
                        socket.InputGeneration++;
                        Host.Close(e.Connection);
                        break;
                    }
                    socket.Receive(e.Data ?? []);
                }
                else if (_pendingByConnection.TryGetValue(e.Connection, out var waiting) && !waiting.PeerClosed)
                {
                    if (waiting.Received.Length + length > MaxUnreadBytes)
                    {
                        waiting.PeerClosed = true;
                        Host.Close(e.Connection);
                        break;
                    }
                    waiting.Received.Write(e.Data ?? []);
                }
                break;
            case NetEventKind.PeerClosed:
                if (_connections.TryGetValue(e.Connection, out var closing))
                {
                    closing.PeerClosed = true;
                    closing.InputGeneration++;
                }
                else if (_pendingByConnection.TryGetValue(e.Connection, out var waitingClose)) waitingClose.PeerClosed = true;
                break;
        }
    }

    private readonly Dictionary<long, PendingConnection> _pendingByConnection = [];

    internal void TakePending(PendingConnection pending) => _pendingByConnection.Remove(pending.Connection);

    /// <summary>
    /// Waits until <paramref name="ready"/> holds, taking host events. <paramref name="timeoutNs"/> 0: one look without
    /// waiting; null: no end (returns false only when the host says nothing will ever come); else until the timeout has
    /// passed on the monotonic clock (read at the start of such a wait and after each batch that did not make it ready:
    /// logged inputs like every clock read). The decisions depend only on the guest's state, the batches and the clock
    /// readings, so replay takes the same path.
    /// </summary>
    public bool WaitFor(Func<bool> ready, long? timeoutNs)
    {
        if (ready()) return true;
        if (timeoutNs == 0)
        {
            Pump(0);
            return ready();
        }
        long wait = timeoutNs ?? -1;
        long deadline = timeoutNs is { } t && monotonicClock is not null ? SaturatingAdd(monotonicClock(), t) : 0;
        while (true)
        {
            if (!Pump(wait)) return ready();
            if (ready()) return true;
            if (timeoutNs is not null && monotonicClock is not null)
            {
                wait = deadline - monotonicClock();
                if (wait <= 0) return false;
            }
        }
    }

    private static long SaturatingAdd(long a, long b) => b > long.MaxValue - a ? long.MaxValue : a + b;
}

internal sealed class PendingConnection(long connection, byte[] peerAddress, int peerPort)
{
    public long Connection { get; } = connection;
    public byte[] PeerAddress { get; } = peerAddress;
    public int PeerPort { get; } = peerPort;
    public MemoryStream Received { get; } = new();
    public bool PeerClosed { get; set; }
    /// <summary>The guest's own client socket, for a connection made inside the guest.</summary>
    public Socket? LocalClient { get; set; }
}
