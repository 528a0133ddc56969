using System.Net;
using Microsoft.Extensions.Logging;

namespace P2PReplay.Transport;

/// <summary>
/// An authenticated, encrypted peer connection after the handshake. SendAsync is safe for concurrent callers;
/// ReceiveAsync must have one caller at a time; cancelling it closes the connection. Any protocol violation or I/O failure closes the connection,
/// logs one line naming the reason and the remote endpoint, and surfaces as FrameException.
/// </summary>
internal sealed class SecureConnection : IAsyncDisposable, IDisposable
{
    private readonly Stream _stream;
    private readonly PeerContext _context;
    private readonly FrameCodec _sender;
    private readonly FrameCodec _receiver;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly CancellationTokenSource _closed = new();
    private readonly byte[] _header = new byte[FrameCodec.HeaderLength];
    private int _receiving;
    private int _disposed;

    public SecureConnection(Stream stream, HandshakeResult handshake, PeerContext context, EndPoint? remoteEndPoint)
    {
        _stream = stream;
        _context = context;
        Handshake = handshake;
        RemoteEndPoint = remoteEndPoint;
        _sender = new FrameCodec(handshake.SendKey, context.Options.MaxFrameSize, context.Options.MaxDecompressedSize);
        _receiver = new FrameCodec(handshake.ReceiveKey, context.Options.MaxFrameSize, context.Options.MaxDecompressedSize);
    }

    public HandshakeResult Handshake { get; }

    public string RemoteNodeId => Handshake.RemoteNodeId;

    public EndPoint? RemoteEndPoint { get; }

    /// <summary>Description used in log lines.</summary>
    public string RemoteDescription => RemoteEndPoint?.ToString() ?? "(in-memory)";

    public bool IsClosed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Token cancelled when the connection closes (for loops tied to its lifetime).</summary>
    public CancellationToken Closed => _closed.Token;

    public async Task SendAsync(ChannelKind kind, ReadOnlyMemory<byte> payload, bool compress, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(IsClosed, this);
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(IsClosed, this);
            byte[] wire = _sender.Seal(kind, payload.Span, compress);
            using var timeout = new TimeoutScope(_context.Options.SendTimeout, _context.Time, cancellationToken, _closed.Token);
            try
            {
                await _stream.WriteAsync(wire, timeout.Token).ConfigureAwait(false);
                await _stream.FlushAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or System.Net.Sockets.SocketException)
            {
                // A half-written frame leaves the stream unusable: close it whatever the cause.
                string detail = e is OperationCanceledException
                    ? timeout.TimedOut ? "send timed out (peer not reading)" : "send cancelled in the middle of a frame"
                    : e.Message;
                throw Fail(FrameFailure.SendFailed, detail);
            }

            _context.Counters.FrameSent(wire.Length);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Next frame, or null when the peer closed cleanly between frames.</summary>
    public async Task<TransportFrame?> ReceiveAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _receiving, 1) != 0) throw new InvalidOperationException("ReceiveAsync already has a caller.");
        try
        {
            ObjectDisposedException.ThrowIf(IsClosed, this);
            using var closedOrCancelled = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
            int read;
            try
            {
                read = await _stream.ReadAtLeastAsync(_header, _header.Length, throwOnEndOfStream: false, closedOrCancelled.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (IsClosed && !cancellationToken.IsCancellationRequested)
            {
                return null; // closed locally (Dispose or a failed send) while waiting for the next frame
            }
            catch (OperationCanceledException)
            {
                // Bytes of a partly read header would be lost, so a cancelled receive ends the connection.
                Close();
                throw;
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
            {
                if (IsClosed) return null;
                throw Fail(FrameFailure.Truncated, $"read failed: {e.Message}");
            }

            if (read == 0)
            {
                Close();
                return null;
            }

            if (read < _header.Length) throw Fail(FrameFailure.Truncated, "connection closed inside a frame header");
            int length;
            try
            {
                length = _receiver.ValidateLength(_header);
            }
            catch (FrameException e)
            {
                throw Fail(e.Reason, e.Message);
            }

            byte[] body = new byte[length];
            using var bodyTimeout = new TimeoutScope(_context.Options.FrameBodyTimeout, _context.Time, closedOrCancelled.Token);
            try
            {
                read = await _stream.ReadAtLeastAsync(body, length, throwOnEndOfStream: false, bodyTimeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (bodyTimeout.TimedOut && !cancellationToken.IsCancellationRequested && !IsClosed)
            {
                throw Fail(FrameFailure.Timeout, $"frame body of {length} bytes did not arrive within {_context.Options.FrameBodyTimeout.TotalSeconds:F0} s");
            }
            catch (OperationCanceledException) when (IsClosed && !cancellationToken.IsCancellationRequested)
            {
                return null; // closed locally in the middle of a frame
            }
            catch (OperationCanceledException)
            {
                Close();
                throw;
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
            {
                if (IsClosed) return null;
                throw Fail(FrameFailure.Truncated, $"read failed: {e.Message}");
            }

            if (read < length) throw Fail(FrameFailure.Truncated, "connection closed inside a frame");
            TransportFrame frame;
            try
            {
                frame = _receiver.Open(_header, body);
            }
            catch (FrameException e)
            {
                throw Fail(e.Reason, e.Message);
            }

            _context.Counters.FrameReceived(FrameCodec.HeaderLength + length);
            return frame;
        }
        finally
        {
            Volatile.Write(ref _receiving, 0);
        }
    }

    private FrameException Fail(FrameFailure reason, string detail)
    {
        if (!IsClosed)
        {
            _context.Counters.FrameFailed(reason);
            TransportLog.ConnectionBroken(_context.Logger, RemoteNodeId, RemoteDescription, reason, detail);
        }

        Close();
        return new FrameException(reason, detail);
    }

    private void Close()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        TransportLog.ConnectionEnded(_context.Logger, RemoteNodeId, RemoteDescription);
        _closed.Cancel();
        _stream.Dispose();

        // Codecs may be in use by a concurrent sender or receiver; their keys are released with the process.
    }

    public void Dispose() => Close();

    public ValueTask DisposeAsync()
    {
        Close();
        return ValueTask.CompletedTask;
    }
}
