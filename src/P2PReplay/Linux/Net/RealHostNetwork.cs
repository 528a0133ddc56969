using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace P2PReplay.Linux.Net;

/// <summary>
/// The real network for <c>p2preplay run --expose GUESTPORT:HOSTPORT</c> and tests: when the guest listens on an exposed
/// port, a host TCP listener on HOSTPORT (0: any free port, see <see cref="HostPort"/>) accepts clients; each client's
/// bytes arrive as events on a queue that <see cref="Poll"/> drains. Host sockets stay here; the guest sees only events.
/// </summary>
public sealed class RealHostNetwork : IHostNetwork, IDisposable
{
    private const int MaxBatch = 256;

    private readonly IReadOnlyDictionary<int, int> _exposed;
    private readonly IPAddress _bindAddress;
    private readonly BlockingCollection<NetEvent> _events = new();
    private readonly ConcurrentDictionary<int, TcpListener> _listeners = new();
    private readonly ConcurrentDictionary<long, System.Net.Sockets.Socket> _connections = new();
    private readonly CancellationTokenSource _interrupted = new();
    private readonly HashSet<int> _noticed = [];
    private long _nextConnection;

    /// <param name="exposed">Guest port → host port (0: any free port).</param>
    /// <param name="bindAddress">Where the host listens; loopback unless given.</param>
    public RealHostNetwork(IReadOnlyDictionary<int, int> exposed, IPAddress? bindAddress = null)
    {
        _exposed = exposed;
        _bindAddress = bindAddress ?? IPAddress.Loopback;
    }

    /// <summary>Messages for the user (a guest port that is not exposed, a host port that cannot be bound).</summary>
    public Action<string> Notice { get; set; } = static message => Console.Error.WriteLine(message);

    /// <summary>The host port serving a guest port, once the guest listens on it.</summary>
    public int? HostPort(int guestPort) =>
        _listeners.TryGetValue(guestPort, out var l) ? ((IPEndPoint)l.LocalEndpoint).Port : null;

    public void Listen(int port)
    {
        if (!_exposed.TryGetValue(port, out int hostPort))
        {
            if (_noticed.Add(port)) Notice($"p2preplay: the guest listens on port {port}, which is not exposed (run --expose {port}:HOSTPORT)");
            return;
        }
        if (_listeners.ContainsKey(port)) return;
        var listener = new TcpListener(_bindAddress, hostPort);
        try
        {
            listener.Start();
        }
        catch (SocketException e)
        {
            Notice($"p2preplay: cannot listen on host port {hostPort} for guest port {port}: {e.Message}");
            return;
        }
        _listeners[port] = listener;
        new Thread(() => AcceptLoop(port, listener)) { IsBackground = true, Name = $"net-accept-{port}" }.Start();
    }

    public void Unlisten(int port)
    {
        if (_listeners.TryRemove(port, out var listener)) listener.Stop();
    }

    private void AcceptLoop(int port, TcpListener listener)
    {
        while (true)
        {
            System.Net.Sockets.Socket client;
            try
            {
                client = listener.AcceptSocket();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            long id = Interlocked.Increment(ref _nextConnection);
            client.NoDelay = true;
            _connections[id] = client;
            var remote = (IPEndPoint)client.RemoteEndPoint!;
            var address = remote.Address.IsIPv4MappedToIPv6 ? remote.Address.MapToIPv4() : remote.Address;
            Post(NetEvent.Connect(port, id, address.GetAddressBytes(), remote.Port));
            new Thread(() => ReadLoop(id, client)) { IsBackground = true, Name = $"net-conn-{id}" }.Start();
        }
    }

    private void ReadLoop(long id, System.Net.Sockets.Socket client)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            int n;
            try
            {
                n = client.Receive(buffer);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                n = 0;
            }
            if (n <= 0)
            {
                Post(NetEvent.Closed(id));
                return;
            }
            Post(NetEvent.Bytes(id, buffer.AsSpan(0, n).ToArray()));
        }
    }

    private void Post(NetEvent e)
    {
        try
        {
            _events.Add(e);
        }
        catch (InvalidOperationException)
        {
            // Disposed: nobody takes events any more.
        }
    }

    public IReadOnlyList<NetEvent> Poll(long timeoutNs)
    {
        int timeoutMs = timeoutNs < 0 ? Timeout.Infinite : (int)Math.Min(int.MaxValue, (timeoutNs + 999_999) / 1_000_000);
        var batch = new List<NetEvent>();
        try
        {
            if (!_events.TryTake(out var first, timeoutMs, _interrupted.Token)) return batch;
            batch.Add(first);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            return batch; // interrupted: to the guest, nothing (more) arrives
        }
        while (batch.Count < MaxBatch && _events.TryTake(out var next)) batch.Add(next);
        return batch;
    }

    /// <summary>Ends every wait now and from now on (the user interrupted the run).</summary>
    public void Interrupt() => _interrupted.Cancel();

    public void Send(long connection, ReadOnlySpan<byte> data)
    {
        if (!_connections.TryGetValue(connection, out var s)) return;
        try
        {
            while (!data.IsEmpty) data = data[s.Send(data)..];
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The client is gone; its reader reports that as PeerClosed.
        }
    }

    public void ShutdownSend(long connection)
    {
        if (!_connections.TryGetValue(connection, out var s)) return;
        try
        {
            s.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    public void Close(long connection)
    {
        if (!_connections.TryRemove(connection, out var s)) return;
        try
        {
            s.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        s.Close();
    }

    public void Dispose()
    {
        _interrupted.Cancel();
        foreach (var port in _listeners.Keys) Unlisten(port);
        foreach (var id in _connections.Keys) Close(id);
        _events.CompleteAdding();
    }
}
