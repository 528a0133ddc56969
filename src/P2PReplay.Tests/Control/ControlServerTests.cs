using System.Net.Sockets;
using System.Text;
using P2PReplay.Control;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Control;

public sealed class ControlServerTests : IAsyncLifetime
{
    private readonly string directory = Directory.CreateTempSubdirectory("p2p-control-").FullName;
    private readonly CapturingLogger log = new();
    private ControlServer server = null!;
    private string SocketPath => Path.Combine(directory, "control.sock");

    public Task InitializeAsync()
    {
        var router = new ControlRouter()
            .Map("GET", "/v1/status", (_, _, _) => Task.FromResult(ControlRouter.Json(200, new TokenBody("hello"), ControlJsonContext.Default.TokenBody)))
            .Map("POST", "/v1/echo", (request, _, _) =>
            {
                var body = ControlRouter.ReadBody(request, ControlJsonContext.Default.TokenBody);
                return Task.FromResult(ControlRouter.Json(200, new TokenBody(body.Token.ToUpperInvariant()), ControlJsonContext.Default.TokenBody));
            })
            .Map("GET", "/v1/items/{name}", (_, values, _) => Task.FromResult(ControlRouter.Json(200, new TokenBody(values["name"]), ControlJsonContext.Default.TokenBody)))
            .Map("GET", "/v1/crash", (_, _, _) => throw new InvalidOperationException("handler bug"));
        server = ControlServer.Start(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, router, log);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await server.DisposeAsync();
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task Client_gets_json()
    {
        using var client = new ControlClient(SocketPath);
        Assert.Equal("hello", (await client.GetAsync("/v1/status", ControlJsonContext.Default.TokenBody)).Token);
        Assert.Equal("ABC", (await client.PostAsync("/v1/echo", new TokenBody("abc"), ControlJsonContext.Default.TokenBody, ControlJsonContext.Default.TokenBody)).Token);
        Assert.Equal("my vm", (await client.GetAsync("/v1/items/my%20vm", ControlJsonContext.Default.TokenBody)).Token);
    }

    [Fact]
    public void Socket_has_the_configured_mode()
    {
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(SocketPath));
    }

    [Fact]
    public async Task Errors_are_json_with_a_message()
    {
        using var client = new ControlClient(SocketPath);
        var missing = await Assert.ThrowsAsync<ControlException>(() => client.GetAsync("/v1/nothing", ControlJsonContext.Default.TokenBody));
        Assert.Equal(404, missing.Status);
        Assert.Contains("/v1/nothing", missing.Message, StringComparison.Ordinal);
        var wrongMethod = await Assert.ThrowsAsync<ControlException>(() => client.PostAsync("/v1/status", ControlJsonContext.Default.TokenBody));
        Assert.Equal(405, wrongMethod.Status);
        var badBody = await Assert.ThrowsAsync<ControlException>(() => client.PostAsync("/v1/echo", ControlJsonContext.Default.TokenBody));
        Assert.Equal(400, badBody.Status);
        var crash = await Assert.ThrowsAsync<ControlException>(() => client.GetAsync("/v1/crash", ControlJsonContext.Default.TokenBody));
        Assert.Equal(500, crash.Status);
        Assert.True(log.Contains("/v1/crash failed"));
        Assert.Equal("hello", (await client.GetAsync("/v1/status", ControlJsonContext.Default.TokenBody)).Token);
    }

    private async Task<string> SendRawAsync(byte[] bytes, bool close = true)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath));
        await socket.SendAsync(bytes, SocketFlags.None);
        if (close) socket.Shutdown(SocketShutdown.Send);
        var answer = new MemoryStream();
        byte[] buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0) answer.Write(buffer, 0, read);
        return Encoding.ASCII.GetString(answer.ToArray());
    }

    [Fact]
    public async Task Garbage_is_answered_with_400_and_logged_and_the_server_keeps_serving()
    {
        var random = new Random(7);
        byte[] garbage = new byte[3000];
        random.NextBytes(garbage);
        garbage[100] = (byte)'\r';
        garbage[101] = (byte)'\n';
        garbage[102] = (byte)'\r';
        garbage[103] = (byte)'\n';
        string answer = await SendRawAsync(garbage);
        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
        Assert.Contains("\"message\"", answer, StringComparison.Ordinal);
        Assert.True(await log.WaitForAsync("refused a malformed request"));

        string truncated = await SendRawAsync(Encoding.ASCII.GetBytes("POST /v1/echo HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"tok"));
        Assert.StartsWith("HTTP/1.1 400", truncated, StringComparison.Ordinal);

        string huge = await SendRawAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nX: " + new string('y', 40_000)));
        Assert.StartsWith("HTTP/1.1 431", huge, StringComparison.Ordinal);

        using var client = new ControlClient(SocketPath);
        Assert.Equal("hello", (await client.GetAsync("/v1/status", ControlJsonContext.Default.TokenBody)).Token);
        Assert.True(server.RequestsRefused >= 3);
    }

    [Fact]
    public async Task Curl_works_against_the_socket()
    {
        if (!File.Exists("/usr/bin/curl")) Assert.Fail("curl is missing: scripts/ensure-deps.sh installs it");
        var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/curl", ["-s", "--unix-socket", SocketPath, "http://localhost/v1/items/x"]) { RedirectStandardOutput = true };
        using var curl = System.Diagnostics.Process.Start(start)!;
        string output = await curl.StandardOutput.ReadToEndAsync();
        await curl.WaitForExitAsync();
        Assert.Contains("\"token\": \"x\"", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_second_server_on_a_live_socket_is_refused()
    {
        var e = Assert.Throws<IOException>(() => ControlServer.Start(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite, new ControlRouter(), log));
        Assert.Contains("already serving", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stale_socket_file_is_replaced()
    {
        string stale = Path.Combine(directory, "stale.sock");
        // A daemon killed with -9 leaves its socket file behind (.NET's own Dispose would unlink it).
        using (var python = System.Diagnostics.Process.Start("python3", ["-c", $"import socket; socket.socket(socket.AF_UNIX).bind('{stale}')"]))
        {
            await python.WaitForExitAsync();
        }
        Assert.True(File.Exists(stale));
        await using var second = ControlServer.Start(stale, UnixFileMode.UserRead | UnixFileMode.UserWrite, new ControlRouter(), log);
        using var client = new ControlClient(stale);
        Assert.Equal(404, (await Assert.ThrowsAsync<ControlException>(() => client.GetAsync("/v1/status", ControlJsonContext.Default.TokenBody))).Status);
    }

    [Fact]
    public async Task Unreachable_daemon_is_a_clear_error()
    {
        using var client = new ControlClient(Path.Combine(directory, "nobody.sock"));
        var e = await Assert.ThrowsAsync<ControlException>(() => client.GetAsync("/v1/status", ControlJsonContext.Default.TokenBody));
        Assert.Contains("no daemon is listening", e.Message, StringComparison.Ordinal);
    }
}
