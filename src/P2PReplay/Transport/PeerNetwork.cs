using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace P2PReplay.Transport;

/// <summary>A frame received from a peer. RemoteAddress is the peer's advertised "host:port" (usable with SendAsync).</summary>
internal sealed record PeerMessage(string RemoteNodeId, string RemoteAddress, ChannelKind Kind, ReadOnlyMemory<byte> Payload);

internal sealed class PeerNetworkOptions
{
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(15);
}

internal sealed record PeerLinkStatus(string Address, string? NodeId, bool Connected, DateTimeOffset? RetryAfter);

/// <summary>Snapshot for the status API.</summary>
internal sealed record PeerNetworkStatus(
    long FramesIn,
    long FramesOut,
    long BytesIn,
    long BytesOut,
    long FramesDropped,
    long HandshakesCompleted,
    IReadOnlyDictionary<string, long> HandshakesRefused,
    IReadOnlyDictionary<string, long> ConnectionsBroken,
    IReadOnlyList<PeerLinkStatus> Peers);

/// <summary>
/// One logical connection per peer address: connects lazily on first send, reconnects with exponential backoff
/// (with jitter), and also uses connections the peer opened to us (keyed by the listen address it advertised in
/// its hello) for replies. Sends are best effort: while a peer is unreachable or backing off, frames are dropped,
/// counted and SendAsync returns false. Every inbound frame goes to the handler, one at a time per connection.
/// </summary>
internal sealed class PeerNetwork : IAsyncDisposable
{
    private readonly PeerContext _context;
    private readonly Func<PeerMessage, CancellationToken, ValueTask> _handler;
    private readonly PeerNetworkOptions _options;
    private readonly Random _jitter;
    private readonly ConcurrentDictionary<string, PeerLink> _links = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<SecureConnection, Task> _receiveLoops = new();
    private readonly CancellationTokenSource _shutdown = new();
    private PeerListener? _listener;
    private Task _acceptLoop = Task.CompletedTask;

    public PeerNetwork(PeerContext context, Func<PeerMessage, CancellationToken, ValueTask> handler, PeerNetworkOptions? options = null, Random? jitter = null)
    {
        _context = context;
        _handler = handler;
        _options = options ?? new PeerNetworkOptions();
        _jitter = jitter ?? new Random();
    }

    /// <summary>Our advertised "host:port" (sent in every hello); "" until started or when not listening.</summary>
    public string AdvertisedAddress { get; private set; } = "";

    public IPEndPoint? ListenEndPoint => _listener?.LocalEndPoint;

    /// <summary>Starts listening. advertisedAddress defaults to the bound endpoint: fine on loopback, but a node bound to a
    /// wildcard address must pass the address peers can reach it at.</summary>
    public void Start(IPEndPoint listenOn, string? advertisedAddress = null)
    {
        if (_listener is not null) throw new InvalidOperationException("PeerNetwork is already started.");
        if (advertisedAddress is not null && !PeerAddress.TryParse(advertisedAddress, out _, out _))
        {
            throw new ArgumentException($"Advertised address '{advertisedAddress}' is not host:port.", nameof(advertisedAddress));
        }

        _listener = new PeerListener(_context, listenOn);
        AdvertisedAddress = advertisedAddress ?? PeerAddress.Format(_listener.LocalEndPoint);
        _listener.Start();
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Sends one frame to the peer at address, connecting if needed. False when the frame was dropped.</summary>
    public async ValueTask<bool> SendAsync(string address, ChannelKind kind, ReadOnlyMemory<byte> payload, bool compress = false, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_shutdown.IsCancellationRequested, this);
        PeerLink link = _links.GetOrAdd(address, static a => new PeerLink(a));
        for (int attempt = 0; attempt < 2; attempt++)
        {
            (SecureConnection? connection, bool fresh, string why) = await GetConnectionAsync(link, cancellationToken).ConfigureAwait(false);
            if (connection is null) return Drop(kind, address, why);
            try
            {
                await connection.SendAsync(kind, payload, compress, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (Exception e) when (e is FrameException or ObjectDisposedException)
            {
                link.Forget(connection);

                // A connection that was idle may have died unnoticed (peer restarted): reconnect once.
                if (fresh) return Drop(kind, address, "connection failed right after connecting");
            }
        }

        return Drop(kind, address, "connection failed");
    }

    public PeerNetworkStatus GetStatus()
    {
        TransportCounters c = _context.Counters;
        PeerLinkStatus[] peers = [.. _links.Values.Select(l => l.Status()).OrderBy(p => p.Address, StringComparer.Ordinal)];
        return new PeerNetworkStatus(c.FramesIn, c.FramesOut, c.BytesIn, c.BytesOut, c.FramesDropped, c.HandshakesCompleted, c.HandshakeRefusalsByReason(), c.FrameFailuresByReason(), peers);
    }

    private bool Drop(ChannelKind kind, string address, string why)
    {
        _context.Counters.FrameDropped();
        TransportLog.FrameDropped(_context.Logger, kind, address, why);
        return false;
    }

    private async Task<(SecureConnection? Connection, bool Fresh, string Why)> GetConnectionAsync(PeerLink link, CancellationToken cancellationToken)
    {
        if (link.Live() is { } live) return (live, false, "");
        if (link.RetryAfter is { } retry && _context.Time.GetUtcNow() < retry) return (null, false, "peer unreachable, backing off");
        await link.ConnectLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (link.Live() is { } raced) return (raced, false, "");
            if (link.RetryAfter is { } retryNow && _context.Time.GetUtcNow() < retryNow) return (null, false, "peer unreachable, backing off");
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _shutdown.Token);
            SecureConnection connection;
            try
            {
                connection = await PeerConnector.ConnectAsync(_context, link.Address, AdvertisedAddress, expectedRemoteNodeId: null, cancellationToken: linked.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HandshakeException or SocketException or TimeoutException or IOException or FormatException
                                          || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                return (null, false, Backoff(link, e.Message));
            }

            if (connection.RemoteNodeId == _context.Identity.NodeId)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                return (null, false, Backoff(link, "this address is our own node"));
            }

            link.Connected(connection);
            StartReceiveLoop(connection, link.Address);
            return (connection, true, "");
        }
        finally
        {
            link.ConnectLock.Release();
        }
    }

    private string Backoff(PeerLink link, string detail)
    {
        TimeSpan next = link.Backoff == TimeSpan.Zero ? _options.InitialBackoff : link.Backoff * 2;
        if (next > _options.MaxBackoff) next = _options.MaxBackoff;
        link.Backoff = next;

        // Jitter (50-100 %) keeps a restarted cluster from reconnecting in lockstep.
        double factor;
        lock (_jitter) factor = 0.5 + (_jitter.NextDouble() / 2);
        TimeSpan wait = next * factor;
        link.RetryAfter = _context.Time.GetUtcNow() + wait;
        TransportLog.ConnectFailed(_context.Logger, link.Address, detail, (long)wait.TotalMilliseconds);
        return detail;
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            await foreach (SecureConnection connection in _listener!.Accepted.ReadAllAsync(_shutdown.Token).ConfigureAwait(false))
            {
                string address = connection.Handshake.RemoteListenAddress.Length > 0
                    ? connection.Handshake.RemoteListenAddress
                    : connection.RemoteDescription;
                _links.GetOrAdd(address, static a => new PeerLink(a)).Adopt(connection);
                StartReceiveLoop(connection, address);
            }
        }
        catch (OperationCanceledException) when (_shutdown.IsCancellationRequested)
        {
        }
    }

    private void StartReceiveLoop(SecureConnection connection, string address) =>
        _receiveLoops[connection] = Task.Run(() => ReceiveLoopAsync(connection, address));

    private async Task ReceiveLoopAsync(SecureConnection connection, string address)
    {
        CancellationToken stop = _shutdown.Token;
        try
        {
            while (await connection.ReceiveAsync(stop).ConfigureAwait(false) is { } frame)
            {
                try
                {
                    await _handler(new PeerMessage(connection.RemoteNodeId, address, frame.Kind, frame.Payload), stop).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
                {
                    TransportLog.HandlerFailed(_context.Logger, e, frame.Kind, connection.RemoteNodeId);
                }
            }
        }
        catch (Exception e) when (e is FrameException or ObjectDisposedException or OperationCanceledException)
        {
            // FrameException was logged by the connection; the others mean we are closing.
        }
        finally
        {
            if (_links.TryGetValue(address, out PeerLink? link)) link.Forget(connection);
            await connection.DisposeAsync().ConfigureAwait(false);
            _receiveLoops.TryRemove(connection, out _);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_shutdown.IsCancellationRequested) return;
        await _shutdown.CancelAsync().ConfigureAwait(false);
        if (_listener is not null) await _listener.DisposeAsync().ConfigureAwait(false);
        await _acceptLoop.ConfigureAwait(false);
        foreach (SecureConnection connection in _receiveLoops.Keys) await connection.DisposeAsync().ConfigureAwait(false);
        await Task.WhenAll(_receiveLoops.Values).ConfigureAwait(false);
    }

    /// <summary>State of one peer address.</summary>
    private sealed class PeerLink(string address)
    {
        private readonly Lock _lock = new();
        private SecureConnection? _connection;
        private string? _nodeId;

        public string Address { get; } = address;

        public SemaphoreSlim ConnectLock { get; } = new(1, 1);

        public TimeSpan Backoff { get; set; }

        public DateTimeOffset? RetryAfter { get; set; }

        public SecureConnection? Live()
        {
            lock (_lock) return _connection is { IsClosed: false } c ? c : null;
        }

        public void Connected(SecureConnection connection)
        {
            lock (_lock)
            {
                _connection = connection;
                _nodeId = connection.RemoteNodeId;
                Backoff = TimeSpan.Zero;
                RetryAfter = null;
            }
        }

        /// <summary>
        /// An inbound connection becomes the send path only when there is no live one, and only if the address is not
        /// known to belong to another node (an authenticated member cannot take over another member's address).
        /// </summary>
        public void Adopt(SecureConnection connection)
        {
            lock (_lock)
            {
                if (_connection is { IsClosed: false }) return;
                if (_nodeId is not null && _nodeId != connection.RemoteNodeId) return;
                _connection = connection;
                _nodeId = connection.RemoteNodeId;
                Backoff = TimeSpan.Zero;
                RetryAfter = null;
            }
        }

        public void Forget(SecureConnection connection)
        {
            lock (_lock)
            {
                if (ReferenceEquals(_connection, connection)) _connection = null;
            }
        }

        public PeerLinkStatus Status()
        {
            lock (_lock) return new PeerLinkStatus(Address, _nodeId, _connection is { IsClosed: false }, RetryAfter);
        }
    }
}
