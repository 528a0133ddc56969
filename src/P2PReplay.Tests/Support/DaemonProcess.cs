using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using P2PReplay.Control;

namespace P2PReplay.Tests.Support;

/// <summary>
/// A real `p2preplay daemon` process (the published NativeAOT binary) with its own data dir, control socket and
/// loopback peer port; its log is kept for assertions. Disposing kills it and removes its files.
/// </summary>
internal sealed class DaemonProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly StringBuilder output = new();
    private readonly bool ownsDirectory;

    public string Directory { get; }
    public string DataDir => Path.Combine(Directory, "data");
    public string Socket => Path.Combine(Directory, "control.sock");
    public int Port { get; }
    public string Host { get; }
    public string Address => $"{Host}:{Port}";

    private DaemonProcess(Process process, string directory, string host, int port, bool ownsDirectory)
    {
        Host = host;
        this.process = process;
        Directory = directory;
        Port = port;
        this.ownsDirectory = ownsDirectory;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (output) output.AppendLine(line);
    }

    public string Log
    {
        get
        {
            lock (output) return output.ToString();
        }
    }

    public bool HasExited => process.HasExited;
    public int Pid => process.Id;

    /// <summary>Picks a free loopback TCP port (the kernel's choice; released before the daemon binds it).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Starts a daemon and waits until its control socket answers.</summary>
    public static async Task<DaemonProcess> StartAsync(string? directory = null, int? port = null, IEnumerable<string>? extraArguments = null,
        string? site = null, IReadOnlyList<string>? prefix = null, string host = "127.0.0.1", bool mdns = false, string? binary = null, bool takeOwnership = false, IReadOnlyDictionary<string, string>? environment = null)
    {
        bool owns = directory is null || takeOwnership;
        directory ??= System.IO.Directory.CreateTempSubdirectory("p2p-daemon-").FullName;
        int chosenPort = port ?? FreePort();
        var arguments = new List<string>(prefix ?? [])
        {
            binary ?? Repo.Binary, "daemon",
            "--data-dir", Path.Combine(directory, "data"),
            "--socket", Path.Combine(directory, "control.sock"),
            "--listen", $"{host}:{chosenPort}",
            "--site", site ?? "site-" + chosenPort,
            "--mdns", mdns ? "on" : "off",
        };
        arguments.AddRange(extraArguments ?? []);
        var start = new ProcessStartInfo(arguments[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments.Skip(1)) start.ArgumentList.Add(argument);
        start.Environment.Remove("NOTIFY_SOCKET");
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        var daemon = new DaemonProcess(Process.Start(start)!, directory, host, chosenPort, owns);
        await daemon.WaitUntilServingAsync();
        return daemon;
    }

    public ControlClient Client() => new(Socket, TimeSpan.FromSeconds(10));

    public async Task<StatusBody> StatusAsync()
    {
        using var client = Client();
        return await client.GetAsync("/v1/status", ControlJsonContext.Default.StatusBody);
    }

    private async Task WaitUntilServingAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited) throw new InvalidOperationException($"the daemon exited with {process.ExitCode} before serving:\n{Log}");
            if (File.Exists(Socket))
            {
                try
                {
                    await StatusAsync();
                    return;
                }
                catch (ControlException)
                {
                }
            }
            await Task.Delay(20);
        }
        throw new TimeoutException($"the daemon did not serve {Socket} within 20 s:\n{Log}");
    }

    /// <summary>
    /// Waits until the daemon's captured output contains <paramref name="text"/> and returns the log (which then
    /// contains it, or not once the time is up). Serving the socket does not mean a line logged before it was read
    /// yet: the console logger writes from a queue and the output is read asynchronously.
    /// </summary>
    public async Task<string> WaitForLogAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!Log.Contains(text, StringComparison.Ordinal) && DateTime.UtcNow < deadline) await Task.Delay(20);
        return Log;
    }

    /// <summary>Polls until the condition holds on this daemon's status, or fails with its log.</summary>
    public async Task<StatusBody> WaitForAsync(Func<StatusBody, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        StatusBody? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await StatusAsync();
                if (condition(last)) return last;
            }
            catch (ControlException)
            {
            }
            await Task.Delay(25);
        }
        throw new TimeoutException($"{what}: not reached within {timeout.TotalSeconds} s; last status: {(last is null ? "none" : System.Text.Json.JsonSerializer.Serialize(last, ControlJsonContext.Default.StatusBody))}\nlog of {Address}:\n{Log}");
    }

    /// <summary>kill -9: no shutdown code runs, as when a machine loses power.</summary>
    public void Kill()
    {
        if (!process.HasExited) process.Kill();
        process.WaitForExit();
    }

    /// <summary>SIGTERM, as systemd stops the service; returns the exit code.</summary>
    public async Task<int> TerminateAsync()
    {
        Interop.PosixKill(process.Id, 15);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await process.WaitForExitAsync(timeout.Token);
        return process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await Task.Yield();
        process.Dispose();
        if (ownsDirectory)
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static class Interop
    {
        public static void PosixKill(int pid, int signal)
        {
            using var kill = Process.Start("kill", [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
        }
    }
}
