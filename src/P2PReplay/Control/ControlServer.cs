using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace P2PReplay.Control;

/// <summary>
/// The control API's server: HTTP/1.1 + JSON on a Unix socket whose file mode (0660 by default) decides who may
/// talk to the daemon. One request per connection; malformed or slow clients get an error and a log line.
/// </summary>
internal sealed partial class ControlServer : IAsyncDisposable
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);
    private const int MaxConcurrentClients = 64;

    private readonly ControlRouter router;
    private readonly ILogger logger;
    private readonly Socket listener;
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim slots = new(MaxConcurrentClients);
    private Task? acceptLoop;

    public string SocketPath { get; }

    public long RequestsServed => Interlocked.Read(ref served);
    public long RequestsRefused => Interlocked.Read(ref refused);
    private long served, refused;

    private ControlServer(string socketPath, ControlRouter router, ILogger logger, Socket listener)
    {
        SocketPath = socketPath;
        this.router = router;
        this.logger = logger;
        this.listener = listener;
    }

    /// <summary>Binds the socket (replacing a stale one, refusing if another daemon answers on it) and sets its mode.</summary>
    public static ControlServer Start(string socketPath, UnixFileMode mode, ControlRouter router, ILogger logger)
    {
        string? directory = Path.GetDirectoryName(Path.GetFullPath(socketPath));
        if (directory is not null) Directory.CreateDirectory(directory);
        if (File.Exists(socketPath))
        {
            if (SomeoneListens(socketPath)) throw new IOException($"another daemon is already serving {socketPath}");
            File.Delete(socketPath);
        }
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(socketPath));
            File.SetUnixFileMode(socketPath, mode);
            socket.Listen(64);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var server = new ControlServer(socketPath, router, logger, socket);
        server.acceptLoop = Task.Run(server.AcceptLoopAsync);
        return server;
    }

    private static bool SomeoneListens(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                LogAcceptFailed(logger, e.Message);
                await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
                continue;
            }
            if (!await slots.WaitAsync(0).ConfigureAwait(false))
            {
                LogTooManyClients(logger, MaxConcurrentClients);
                _ = RefuseAsync(client);
                continue;
            }
            _ = ServeAsync(client);
        }
    }

    private static async Task RefuseAsync(Socket client)
    {
        using (client)
        {
            try
            {
                await client.SendAsync(ControlRouter.Error(503, "the daemon is serving too many control clients").Encode(), SocketFlags.None).ConfigureAwait(false);
            }
            catch (SocketException)
            {
            }
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        timeout.CancelAfter(RequestTimeout);
        try
        {
            using (client)
            {
                HttpResponse response;
                try
                {
                    var request = await ReadRequestAsync(client, timeout.Token).ConfigureAwait(false);
                    if (request is null) return;
                    try
                    {
                        response = await router.DispatchAsync(request, timeout.Token).ConfigureAwait(false);
                        Interlocked.Increment(ref served);
                    }
                    catch (HttpFormatException e)
                    {
                        response = ControlRouter.Error(e.Status, e.Message);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // A bug in one handler answers 500 and is logged; the daemon keeps serving.
                        LogHandlerFailed(logger, request.Method, request.Path, e);
                        response = ControlRouter.Error(500, $"internal error: {e.Message}");
                    }
                }
                catch (HttpFormatException e)
                {
                    Interlocked.Increment(ref refused);
                    LogMalformedRequest(logger, e.Message);
                    response = ControlRouter.Error(e.Status, e.Message);
                }
                await client.SendAsync(response.Encode(), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                client.Shutdown(SocketShutdown.Send);
                await DrainAsync(client, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            if (!stopping.IsCancellationRequested)
            {
                Interlocked.Increment(ref refused);
                LogClientTimedOut(logger, RequestTimeout.TotalSeconds);
            }
        }
        catch (SocketException)
        {
            // The client went away; nothing to answer.
        }
        finally
        {
            slots.Release();
        }
    }

    /// <summary>
    /// Reads what the client still sends (bounded) before closing: closing with unread bytes would reset the
    /// connection and the client might lose the answer (a "lingering close").
    /// </summary>
    private static async Task DrainAsync(Socket client, CancellationToken cancel)
    {
        byte[] sink = new byte[4096];
        int total = 0;
        using var linger = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        linger.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            int read;
            while (total < 1 << 20 && (read = await client.ReceiveAsync(sink, SocketFlags.None, linger.Token).ConfigureAwait(false)) > 0) total += read;
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
        }
    }

    /// <summary>Reads one request; null if the client closed before sending anything.</summary>
    private static async Task<HttpRequest?> ReadRequestAsync(Socket client, CancellationToken cancel)
    {
        byte[] buffer = new byte[4096];
        int filled = 0, headerEnd;
        while (true)
        {
            headerEnd = HttpRequestParser.FindHeaderEnd(buffer.AsSpan(0, filled));
            if (headerEnd >= 0) break;
            if (filled == buffer.Length) Array.Resize(ref buffer, Math.Min(buffer.Length * 2, HttpRequestParser.MaxHeaderBytes + 4));
            int read = await client.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancel).ConfigureAwait(false);
            if (read == 0)
            {
                if (filled == 0) return null;
                throw new HttpFormatException(400, "the connection closed in the middle of the request headers");
            }
            filled += read;
        }
        var (method, path, headers, contentLength) = HttpRequestParser.ParseHead(buffer.AsSpan(0, headerEnd));
        byte[] body = new byte[contentLength];
        int have = Math.Min(filled - headerEnd, contentLength);
        buffer.AsSpan(headerEnd, have).CopyTo(body);
        while (have < contentLength)
        {
            int read = await client.ReceiveAsync(body.AsMemory(have), SocketFlags.None, cancel).ConfigureAwait(false);
            if (read == 0) throw new HttpFormatException(400, "the connection closed in the middle of the request body");
            have += read;
        }
        return new HttpRequest(method, path, headers, body);
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        listener.Dispose();
        if (acceptLoop is not null) await acceptLoop.ConfigureAwait(false);
        try
        {
            File.Delete(SocketPath);
        }
        catch (IOException)
        {
        }
        stopping.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "control socket: refused a malformed request: {Reason}")]
    private static partial void LogMalformedRequest(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "control socket: a client sent no complete request within {Seconds} s; closed")]
    private static partial void LogClientTimedOut(ILogger logger, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "control socket: {Limit} clients at once; refused one more")]
    private static partial void LogTooManyClients(ILogger logger, int limit);

    [LoggerMessage(Level = LogLevel.Warning, Message = "control socket: accept failed: {Reason}")]
    private static partial void LogAcceptFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "control API: {Method} {Path} failed")]
    private static partial void LogHandlerFailed(ILogger logger, string method, string path, Exception exception);
}
