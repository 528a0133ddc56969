using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace P2PReplay.Control;

/// <summary>The daemon answered with an error (its JSON message), or could not be reached.</summary>
internal sealed class ControlException(string message, int status = 0) : Exception(message)
{
    /// <summary>The HTTP status, or 0 when the daemon could not be reached at all.</summary>
    public int Status { get; } = status;
}

/// <summary>Client of the control API over the daemon's Unix socket (what the admin subcommands use).</summary>
internal sealed class ControlClient : IDisposable
{
    public const string DefaultSocket = "/run/p2preplay/p2preplay.sock";

    /// <summary>The socket the admin commands use unless --socket says otherwise: $P2PREPLAY_SOCKET, else the default.</summary>
    public static string SocketFromEnvironment() =>
        Environment.GetEnvironmentVariable("P2PREPLAY_SOCKET") is { Length: > 0 } fromEnvironment ? fromEnvironment : DefaultSocket;

    private readonly HttpClient http;
    private readonly string socketPath;

    public ControlClient(string socketPath, TimeSpan? timeout = null)
    {
        this.socketPath = socketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancel) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancel).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        http = new HttpClient(handler) { BaseAddress = new Uri("http://localhost/"), Timeout = timeout ?? TimeSpan.FromSeconds(30) };
    }

    public Task<T> GetAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken cancel = default) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, path), type, cancel);

    public Task<T> PostAsync<TBody, T>(string path, TBody body, JsonTypeInfo<TBody> bodyType, JsonTypeInfo<T> type, CancellationToken cancel = default)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, bodyType));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Content = content }, type, cancel);
    }

    public Task<T> DeleteAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken cancel = default) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Delete, path), type, cancel);

    /// <summary>A non-JSON answer (the guest's output): the raw body.</summary>
    public async Task<byte[]> GetBytesAsync(string path, CancellationToken cancel = default)
    {
        var raw = await SendRawAsync(new HttpRequestMessage(HttpMethod.Get, path), cancel).ConfigureAwait(false);
        return raw.Body;
    }

    public Task<T> PostAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken cancel = default) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Post, path), type, cancel);

    private async Task<T> SendAsync<T>(HttpRequestMessage request, JsonTypeInfo<T> type, CancellationToken cancel)
    {
        var raw = await SendRawAsync(request, cancel).ConfigureAwait(false);
        try
        {
            return JsonSerializer.Deserialize(raw.Body, type) ?? throw new ControlException("the daemon answered null");
        }
        catch (JsonException e)
        {
            throw new ControlException($"the daemon's answer is not the expected JSON: {e.Message}");
        }
    }

    private async Task<(int Status, byte[] Body)> SendRawAsync(HttpRequestMessage request, CancellationToken cancel)
    {
        using (request)
        {
            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request, cancel).ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (e.InnerException is SocketException socketError)
            {
                throw new ControlException(socketError.SocketErrorCode switch
                {
                    SocketError.AccessDenied => $"permission denied on {socketPath}: join the socket's group (p2preplay) or use sudo",
                    SocketError.AddressNotAvailable or SocketError.ConnectionRefused => $"no daemon is listening on {socketPath} (is p2preplay.service running?)",
                    _ => $"cannot reach the daemon at {socketPath}: {socketError.Message}",
                });
            }
            catch (HttpRequestException e)
            {
                throw new ControlException($"cannot talk to the daemon at {socketPath}: {e.Message}");
            }
            using (response)
            {
                byte[] body = await response.Content.ReadAsByteArrayAsync(cancel).ConfigureAwait(false);
                if (response.StatusCode != HttpStatusCode.OK && response.StatusCode != HttpStatusCode.Created)
                {
                    string message;
                    try
                    {
                        message = JsonSerializer.Deserialize(body, ControlJsonContext.Default.ErrorBody)?.Message ?? response.ReasonPhrase ?? "error";
                    }
                    catch (JsonException)
                    {
                        message = $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}";
                    }
                    throw new ControlException(message, (int)response.StatusCode);
                }
                return ((int)response.StatusCode, body);
            }
        }
    }

    public void Dispose() => http.Dispose();
}
