using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace P2PReplay.Transport;

/// <summary>
/// Accepts TCP connections, runs the responder handshake on each (bounded time, bounded number pending) and
/// hands out authenticated connections. Failed handshakes are logged, counted and closed; the listener keeps serving.
/// </summary>
internal sealed class PeerListener : IAsyncDisposable
{
    private const int AcceptedQueueLength = 64;

    private readonly PeerContext _context;
    private readonly Socket _socket;
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<SecureConnection> _accepted = Channel.CreateBounded<SecureConnection>(new BoundedChannelOptions(AcceptedQueueLength) { SingleReader = false, SingleWriter = false });
    private int _pending;
    private long _refused;
    private Task _acceptLoop = Task.CompletedTask;

    public PeerListener(PeerContext context, IPEndPoint endPoint)
    {
        _context = context;
        _socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _socket.Bind(endPoint);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }

        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    /// <summary>The bound endpoint (the actual port when bound to port 0).</summary>
    public IPEndPoint LocalEndPoint { get; }

    public ChannelReader<SecureConnection> Accepted => _accepted.Reader;

    /// <summary>Connections closed because their handshake failed or too many were pending.</summary>
    public long RefusedConnections => Interlocked.Read(ref _refused);

    public void Start()
    {
        _socket.Listen(128);
        TransportLog.ListenerStarted(_context.Logger, LocalEndPoint.ToString());
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        CancellationToken stop = _stop.Token;
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(stop).ConfigureAwait(false);
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e)
            {
                // Out of file descriptors and the like: wait a little instead of spinning.
                TransportLog.AcceptFailed(_context.Logger, LocalEndPoint.ToString(), e.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(100), _context.Time, CancellationToken.None).ConfigureAwait(false);
                continue;
            }

            int pending = Interlocked.Increment(ref _pending);
            if (pending > _context.Options.MaxPendingHandshakes)
            {
                Interlocked.Decrement(ref _pending);
                Interlocked.Increment(ref _refused);
                TransportLog.TooManyPendingHandshakes(_context.Logger, client.RemoteEndPoint?.ToString() ?? "?", pending - 1);
                client.Dispose();
                continue;
            }

            _ = Task.Run(() => HandshakeAsync(client, stop), CancellationToken.None);
        }
    }

    private async Task HandshakeAsync(Socket client, CancellationToken stop)
    {
        EndPoint? remote = client.RemoteEndPoint;
        string remoteText = remote?.ToString() ?? "?";
        var stream = new NetworkStream(client, ownsSocket: true);
        HandshakeResult? result = null;
        try
        {
            SocketTuning.Apply(client);
            result = await Handshake.RespondAsync(stream, _context, stop).ConfigureAwait(false);
        }
        catch (HandshakeException e)
        {
            Interlocked.Increment(ref _refused);
            _context.Counters.HandshakeRefused(e.Reason);
            TransportLog.HandshakeRefused(_context.Logger, remoteText, e.Reason, e.Message);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
            // Listener shutting down, or the socket died before the handshake started.
        }
        catch (Exception e)
        {
            // Never let one connection's unexpected failure go unnoticed or take down the listener.
            Interlocked.Increment(ref _refused);
            _context.Counters.HandshakeRefused(HandshakeFailure.Malformed);
            TransportLog.HandshakeRefused(_context.Logger, remoteText, HandshakeFailure.Malformed, $"unexpected {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            Interlocked.Decrement(ref _pending);
        }

        if (result is null)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            return;
        }

        var connection = new SecureConnection(stream, result, _context, remote);
        TransportLog.PeerConnected(_context.Logger, result.RemoteNodeId, "inbound", remoteText);
        try
        {
            await _accepted.Writer.WriteAsync(connection, stop).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        _accepted.Writer.TryComplete();
        while (_accepted.Reader.TryRead(out SecureConnection? unclaimed)) await unclaimed.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
