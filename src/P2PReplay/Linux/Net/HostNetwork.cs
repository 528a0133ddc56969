namespace P2PReplay.Linux.Net;

/// <summary>What can happen on the network outside the VM, as the guest may observe it.</summary>
public enum NetEventKind : byte
{
    /// <summary>A client connected to a port the guest listens on.</summary>
    Connected = 1,
    /// <summary>Bytes from a client.</summary>
    Data = 2,
    /// <summary>The client closed its sending side (FIN) or the connection broke.</summary>
    PeerClosed = 3,
}

/// <summary>
/// One network event. Connected: <see cref="Port"/> is the guest's listening port, <see cref="Data"/> the client's
/// address (4 or 16 bytes), <see cref="PeerPort"/> its port. Data: the bytes. PeerClosed: nothing more.
/// </summary>
public readonly record struct NetEvent(NetEventKind Kind, long Connection, int Port = 0, byte[]? Data = null, int PeerPort = 0)
{
    public static NetEvent Connect(int port, long connection, byte[] peerAddress, int peerPort) => new(NetEventKind.Connected, connection, port, peerAddress, peerPort);

    public static NetEvent Bytes(long connection, byte[] data) => new(NetEventKind.Data, connection, 0, data);

    public static NetEvent Closed(long connection) => new(NetEventKind.PeerClosed, connection);
}

/// <summary>
/// The network outside the VM, as the host (a daemon, the run command, a test) provides it. The VMM asks it what happened
/// only at syscalls (that is where a recording logs it); guest output to clients leaves through it. Connection ids are
/// the host's; the guest never sees them.
/// </summary>
public interface IHostNetwork
{
    /// <summary>The guest listens on <paramref name="port"/>: the host may now deliver connections to it.</summary>
    void Listen(int port);

    /// <summary>The guest stopped listening on <paramref name="port"/>.</summary>
    void Unlisten(int port);

    /// <summary>
    /// What happened since the last call. <paramref name="timeoutNs"/> 0: do not wait; below 0: wait until something
    /// happens; above 0: wait at most that long. Empty: nothing happened in time (with an endless wait: nothing ever will).
    /// </summary>
    IReadOnlyList<NetEvent> Poll(long timeoutNs);

    /// <summary>Guest bytes to a client.</summary>
    void Send(long connection, ReadOnlySpan<byte> data);

    /// <summary>The guest shut down its sending side (FIN to the client), the connection stays open for reading.</summary>
    void ShutdownSend(long connection);

    /// <summary>The guest closed the connection (or refused it: it arrived on a port nobody listens on any more).</summary>
    void Close(long connection);
}

/// <summary>
/// No network: listening works, nobody ever connects. <see cref="Sleeping"/> (the real host's default) waits out finite
/// timeouts, so a guest using a network wait as a timer does not spin; <see cref="Instance"/> returns at once (fakes).
/// </summary>
public sealed class NoHostNetwork : IHostNetwork
{
    public static readonly NoHostNetwork Instance = new(false);

    public static readonly NoHostNetwork Sleeping = new(true);

    private readonly bool _sleeps;

    private NoHostNetwork(bool sleeps) => _sleeps = sleeps;

    public IReadOnlyList<NetEvent> Poll(long timeoutNs)
    {
        if (_sleeps && timeoutNs > 0) Thread.Sleep((int)Math.Min(int.MaxValue - 1, (timeoutNs + 999_999) / 1_000_000));
        return [];
    }

    public void Listen(int port) { }

    public void Unlisten(int port) { }

    public void Send(long connection, ReadOnlySpan<byte> data) { }

    public void ShutdownSend(long connection) { }

    public void Close(long connection) { }
}

/// <summary>
/// An in-memory network for tests and tools: events are queued by hand (or by <see cref="OnPoll"/>, which may react
/// to what the guest sent); what the guest sends is collected per connection.
/// </summary>
public sealed class InMemoryHostNetwork : IHostNetwork
{
    private readonly Queue<NetEvent> _pending = new();

    public HashSet<int> Listening { get; } = [];

    public Dictionary<long, MemoryStream> Sent { get; } = [];

    public HashSet<long> ClosedByGuest { get; } = [];

    public HashSet<long> ShutByGuest { get; } = [];

    public int Polls { get; private set; }

    /// <summary>Called when a poll finds no queued event, to queue more (a scripted client).</summary>
    public Action<InMemoryHostNetwork>? OnPoll { get; set; }

    public void Enqueue(NetEvent e) => _pending.Enqueue(e);

    public string SentText(long connection) => Sent.TryGetValue(connection, out var s) ? System.Text.Encoding.UTF8.GetString(s.ToArray()) : "";

    public void Listen(int port) => Listening.Add(port);

    public void Unlisten(int port) => Listening.Remove(port);

    public IReadOnlyList<NetEvent> Poll(long timeoutNs)
    {
        Polls++;
        if (_pending.Count == 0) OnPoll?.Invoke(this);
        var events = _pending.ToArray();
        _pending.Clear();
        return events;
    }

    public void Send(long connection, ReadOnlySpan<byte> data)
    {
        if (!Sent.TryGetValue(connection, out var s)) Sent[connection] = s = new MemoryStream();
        s.Write(data);
    }

    public void ShutdownSend(long connection) => ShutByGuest.Add(connection);

    public void Close(long connection) => ClosedByGuest.Add(connection);
}
