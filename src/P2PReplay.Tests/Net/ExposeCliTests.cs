using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Net;

/// <summary>`p2preplay run --expose` with the published binary: a real client talks to a recorded guest server; `replay` verifies the log.</summary>
public sealed class ExposeCliTests
{
    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    [KvmFact]
    public void Recorded_server_behind_expose_replays()
    {
        string dir = GuestRunner.TempDirectory();
        string log = Path.Combine(dir, "echo.log");
        int port = FreePort();
        var info = new ProcessStartInfo(Repo.Binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { "run", "--expose", $"9000:{port}", "--record", log, "--", Repo.Guest("musl", "echo_server"), "9000", "epoll" })
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            TcpClient? client = null;
            for (int i = 0; i < 300 && client is null; i++)
            {
                try { client = new TcpClient("127.0.0.1", port); }
                catch (SocketException) { Thread.Sleep(20); }
            }
            Assert.NotNull(client);
            using (client)
            {
                var s = client.GetStream();
                s.Write("ECHO over the wire\nQUIT\n"u8);
                var reply = new StringBuilder();
                var buffer = new byte[256];
                int n;
                while (reply.ToString().Count(c => c == '\n') < 2 && (n = s.Read(buffer)) > 0) reply.Append(Encoding.UTF8.GetString(buffer, 0, n));
                Assert.Equal("over the wire\nBYE\n", reply.ToString());
            }
            Assert.True(process.WaitForExit(30_000), "the recorded server did not end");
            Assert.True(process.ExitCode == 0, stderr.Result);
            Assert.Contains("served 2 requests from 1 clients", stdout.Result);

            var replay = GuestRunner.Cli(["replay", log]);
            Assert.True(replay.ExitCode == 0, GuestRunner.Describe(replay));
            Assert.Equal(stdout.Result, replay.Stdout);
            Assert.Contains("replay verified", replay.Stderr);
        }
        finally
        {
            if (!process.HasExited) process.Kill();
            Directory.Delete(dir, recursive: true);
        }
    }
}
