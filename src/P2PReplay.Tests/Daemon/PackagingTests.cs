using System.Diagnostics;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Daemon;

/// <summary>The .deb holds what a fresh machine needs, its binary runs from where it is installed, its unit verifies.</summary>
[Collection("daemons")]
public sealed class PackagingTests
{
    private static async Task<(int Code, string Output)> RunAsync(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }

    [Fact]
    public async Task Deb_contains_the_binary_libsodium_unit_config_and_maintainer_scripts_and_runs_after_extraction()
    {
        string directory = Directory.CreateTempSubdirectory("p2p-deb-").FullName;
        try
        {
            var (code, output) = await RunAsync(Path.Combine(Repo.Root, "packaging", "build-deb.sh"), "--from", Path.GetDirectoryName(Repo.Binary)!, directory);
            Assert.True(code == 0, output);
            string deb = output.Trim().Split('\n')[^1];
            Assert.True(File.Exists(deb), output);

            (code, output) = await RunAsync("dpkg-deb", "--contents", deb);
            Assert.Equal(0, code);
            foreach (string path in new[] { "./usr/lib/p2preplay/p2preplay", "./usr/lib/p2preplay/libsodium.so", "./usr/bin/p2preplay -> ../lib/p2preplay/p2preplay",
                         "./lib/systemd/system/p2preplay.service", "./etc/p2preplay/p2preplay.conf" })
            {
                Assert.Contains(path, output, StringComparison.Ordinal);
            }
            Assert.Contains("root/root", output, StringComparison.Ordinal);

            (code, output) = await RunAsync("dpkg-deb", "--info", deb);
            Assert.Equal(0, code);
            Assert.Contains("Package: p2preplay", output, StringComparison.Ordinal);
            Assert.Contains("postinst", output, StringComparison.Ordinal);
            Assert.Contains("conffiles", output, StringComparison.Ordinal);

            // The postinst creates the system user and group and puts the daemon in the kvm group.
            string control = Path.Combine(directory, "control");
            Assert.Equal(0, (await RunAsync("dpkg-deb", "--control", deb, control)).Code);
            string postinst = await File.ReadAllTextAsync(Path.Combine(control, "postinst"));
            Assert.Contains("adduser --system --ingroup p2preplay", postinst, StringComparison.Ordinal);
            Assert.Contains("adduser p2preplay kvm", postinst, StringComparison.Ordinal);
            Assert.Equal(0, (await RunAsync("sh", "-n", Path.Combine(control, "postinst"))).Code);

            // Extracted, the binary runs through its /usr/bin symlink and finds libsodium beside itself.
            string root = Path.Combine(directory, "root");
            Assert.Equal(0, (await RunAsync("dpkg-deb", "-x", deb, root)).Code);
            await using var daemon = await DaemonProcess.StartAsync(binary: Path.Combine(root, "usr", "bin", "p2preplay"));
            Assert.Contains("ready: node", await daemon.WaitForLogAsync("ready: node", TimeSpan.FromSeconds(5)), StringComparison.Ordinal);

            // The unit file as installed passes systemd-analyze verify (pointed at the extracted binary).
            string unit = Path.Combine(directory, "p2preplay.service");
            string text = await File.ReadAllTextAsync(Path.Combine(root, "lib", "systemd", "system", "p2preplay.service"));
            await File.WriteAllTextAsync(unit, text.Replace("/usr/lib/p2preplay/p2preplay", Path.Combine(root, "usr", "lib", "p2preplay", "p2preplay"), StringComparison.Ordinal));
            (code, output) = await RunAsync("systemd-analyze", "verify", unit);
            Assert.True(code == 0, output);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
