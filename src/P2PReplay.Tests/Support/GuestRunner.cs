using System.Diagnostics;
using System.Text;
using P2PReplay.Linux;
using P2PReplay.Tests.Fakes;
using P2PReplay.Vmm;

namespace P2PReplay.Tests.Support;

/// <summary>The outcome of one program run, natively or in the VM.</summary>
public sealed record RunResult(string Stdout, string Stderr, int ExitCode, ExitStatus? Status = null, IReadOnlyList<(long Number, string Name, int Calls)>? Unsupported = null);

/// <summary>Runs programs in an in-process microVM and natively, for differential tests.</summary>
public static class GuestRunner
{
    /// <summary>Runs in a fresh VM with a deterministic host. The image root (if any) is the VM's read-only root.</summary>
    public static RunResult InVm(string program, IReadOnlyList<string> args, string? root = null, IReadOnlyList<string>? env = null,
        byte[]? stdin = null, ulong memory = VmConfiguration.DefaultMemorySize, FakeHost? host = null)
    {
        host ??= new FakeHost(stdin) { ClockStep = 1000 };
        var argv = new List<string> { program };
        argv.AddRange(args);
        var config = new VmConfiguration(File.ReadAllBytes(program), program, argv, env ?? [], root, memory);
        using var vm = MicroVm.Create(config, host, null);
        var status = vm.Run() ?? throw new InvalidOperationException("the VM paused although nobody asked");
        return new RunResult(host.StdoutText, host.StderrText, status.ShellStatus, status, vm.Dispatcher.UnsupportedCalls);
    }

    /// <summary>Runs natively with exactly the given environment, in the given working directory.</summary>
    public static RunResult Native(string program, IReadOnlyList<string> args, string? workingDirectory = null, IReadOnlyList<string>? env = null, byte[]? stdin = null)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        foreach (string a in args) info.ArgumentList.Add(a);
        info.Environment.Clear();
        foreach (string kv in env ?? [])
        {
            int eq = kv.IndexOf('=');
            info.Environment[kv[..eq]] = kv[(eq + 1)..];
        }
        return RunProcess(info, stdin);
    }

    /// <summary>Runs the published p2preplay binary with the given arguments.</summary>
    public static RunResult Cli(IReadOnlyList<string> args, byte[]? stdin = null, IReadOnlyDictionary<string, string>? env = null)
    {
        var info = new ProcessStartInfo(Repo.Binary)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in args) info.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) info.Environment[k] = v;
        return RunProcess(info, stdin);
    }

    private static RunResult RunProcess(ProcessStartInfo info, byte[]? stdin)
    {
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            if (stdin is not null) process.StandardInput.BaseStream.Write(stdin);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The program ended without reading all of its input (a broken pipe), as many do.
        }
        if (!process.WaitForExit(60_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{info.FileName} {string.Join(' ', info.ArgumentList)} did not finish in 60 s");
        }
        process.WaitForExit();
        int code = process.ExitCode;
        return new RunResult(stdout.Result, stderr.Result, code);
    }

    /// <summary>A fresh temporary directory, copied from a template when given.</summary>
    public static string TempDirectory(string? template = null)
    {
        string dir = Path.Combine(Path.GetTempPath(), "p2preplay-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        if (template is not null)
        {
            foreach (string file in Directory.GetFiles(template, "*", SearchOption.AllDirectories))
            {
                string target = Path.Combine(dir, Path.GetRelativePath(template, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
        }
        return dir;
    }

    public static string Describe(RunResult r) => new StringBuilder()
        .Append("exit ").Append(r.ExitCode).Append('\n')
        .Append("stdout: ").Append(r.Stdout).Append('\n')
        .Append("stderr: ").Append(r.Stderr).ToString();
}
