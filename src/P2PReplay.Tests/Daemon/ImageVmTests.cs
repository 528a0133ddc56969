using System.Text;
using P2PReplay.Cluster.Images;
using P2PReplay.Control;
using P2PReplay.Replay;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Daemon;

/// <summary>`vm create --image DIR` on three real daemons: the image reaches every copy by its hash.</summary>
[Collection("daemons")]
public sealed class ImageVmTests
{
    private static async Task<VmBody> ShowAsync(DaemonProcess daemon, string name)
    {
        using var client = daemon.Client();
        return await client.GetAsync($"/v1/vms/{name}", ControlJsonContext.Default.VmBody);
    }

    private static ulong Fnv1a(byte[] bytes)
    {
        ulong hash = 1469598103934665603UL;
        foreach (byte b in bytes) hash = (hash ^ b) * 1099511628211UL;
        return hash;
    }

    [KvmFact]
    public async Task A_vm_created_from_an_image_runs_on_three_daemons_each_holding_the_verified_image()
    {
        string image = Directory.CreateTempSubdirectory("p2preplay-image-").FullName;
        var daemons = await ClusterProcessTests.FormClusterAsync(3);
        try
        {
            // The image: the guest program and its data; the data reaches the other nodes only inside the image.
            Directory.CreateDirectory(Path.Combine(image, "bin"));
            Directory.CreateDirectory(Path.Combine(image, "data"));
            File.Copy(Repo.Guest("musl", "readfile"), Path.Combine(image, "bin", "readfile"));
            File.SetUnixFileMode(Path.Combine(image, "bin", "readfile"), (UnixFileMode)0x1ED);
            File.WriteAllText(Path.Combine(image, "data", "hello.txt"), "hello from the image\n");
            byte[] values = Enumerable.Range(0, 700_000).Select(i => (byte)(i * 31 % 251)).ToArray(); // three transfer chunks
            File.WriteAllBytes(Path.Combine(image, "data", "values.bin"), values);
            File.CreateSymbolicLink(Path.Combine(image, "data", "greeting"), "hello.txt");
            string hash = ImageHash.Compute(image);

            var (code, output) = await Cli.RunAsync(["vm", "create", "img", "--replicas", "2", "--image", image, "--socket", daemons[1].Socket,
                "--", "/bin/readfile", "/data/greeting", "/data/values.bin"]);
            Assert.True(code == 0, output);
            var placement = await ShowAsync(daemons[0], "img");
            Assert.Equal(hash, placement.ImageHash);
            Assert.Equal("/bin/readfile", placement.Program);

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            var views = new List<VmBody>();
            while (DateTime.UtcNow < deadline)
            {
                views.Clear();
                foreach (var daemon in daemons) views.Add(await ShowAsync(daemon, "img"));
                if (views.All(v => v.State.StartsWith("exited ", StringComparison.Ordinal) || v.State.StartsWith("finished (", StringComparison.Ordinal) || v.Error is not null)) break;
                await Task.Delay(100);
            }
            Assert.All(views, v => Assert.Null(v.Error));
            Assert.Equal("exited 0", views.Single(v => v.Role == "primary").State);
            Assert.All(views.Where(v => v.Role == "replica"), v => Assert.Matches(@"finished \(exited 0, \d+ digests verified\)", v.State));

            // Every node's store holds the image under its hash, and its content verifies.
            foreach (var daemon in daemons)
            {
                string stored = Path.Combine(daemon.DataDir, "images", hash);
                Assert.True(Directory.Exists(stored), $"{daemon.Address} has no {stored}");
                Assert.Equal(hash, ImageHash.Compute(stored));
            }
            // The creator imported it; the two others fetched it by hash from a peer.
            Assert.Contains($"image {hash}: imported from {image}", daemons[1].Log, StringComparison.Ordinal);
            Assert.Contains($"image {hash}: fetched from", daemons[0].Log, StringComparison.Ordinal);
            Assert.Contains($"image {hash}: fetched from", daemons[2].Log, StringComparison.Ordinal);

            // The same output on every copy: the file read through the image's symlink and the big file's checksum.
            var outputs = new List<string>();
            foreach (var daemon in daemons)
            {
                using var client = daemon.Client();
                outputs.Add(Encoding.UTF8.GetString(await client.GetBytesAsync("/v1/vms/img/logs")));
            }
            Assert.Contains("hello from the image\n", outputs[0], StringComparison.Ordinal);
            Assert.Contains($"/data/values.bin: {values.Length} bytes, fnv1a 0x{Fnv1a(values):x16}\n", outputs[0], StringComparison.Ordinal);
            Assert.EndsWith("done\n", outputs[0], StringComparison.Ordinal);
            Assert.All(outputs, o => Assert.Equal(outputs[0], o));

            // A program that is not in the image is refused at create time.
            (code, output) = await Cli.RunAsync(["vm", "create", "missing", "--image", image, "--socket", daemons[0].Socket, "--", "/bin/nothere"]);
            Assert.NotEqual(0, code);
            Assert.Contains("holds no readable program /bin/nothere", output, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
            ImageStore.ForceDelete(image);
        }
    }

    [KvmFact]
    public async Task Copies_that_cannot_get_their_image_say_so_keep_retrying_and_stop_cleanly()
    {
        string image = Directory.CreateTempSubdirectory("p2preplay-image-").FullName;
        // Every daemon refuses to send images: the two nodes that did not import it can never fetch it.
        var daemons = await ClusterProcessTests.FormClusterAsync(3, new Dictionary<string, string> { ["P2PREPLAY_FAILPOINTS"] = "image-serve-refuse" });
        try
        {
            Directory.CreateDirectory(Path.Combine(image, "bin"));
            File.Copy(Repo.Guest("musl", "hello"), Path.Combine(image, "bin", "hello"));
            string hash = ImageHash.Compute(image);
            var (code, output) = await Cli.RunAsync(["vm", "create", "stuck", "--replicas", "2", "--image", image, "--socket", daemons[1].Socket, "--", "/bin/hello"]);
            Assert.True(code == 0, output);

            var fetchers = new[] { daemons[0], daemons[2] };
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            var states = new List<string>();
            while (true)
            {
                states.Clear();
                foreach (var daemon in fetchers) states.Add((await ShowAsync(daemon, "stuck")).State);
                if (states.All(s => s.Contains("refused: failpoint image-serve-refuse", StringComparison.Ordinal))) break;
                Assert.True(DateTime.UtcNow < deadline, string.Join(" | ", states));
                await Task.Delay(100);
            }
            Assert.All(states, s => Assert.StartsWith("fetching image (attempt ", s, StringComparison.Ordinal));
            // It is retried (the attempt count grows), and nothing crashes meanwhile.
            static int Attempts(string state) => int.Parse(System.Text.RegularExpressions.Regex.Match(state, @"attempt (\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            int before = Attempts(states[0]);
            deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (Attempts((await ShowAsync(fetchers[0], "stuck")).State) <= before)
            {
                Assert.True(DateTime.UtcNow < deadline, "no retry within 20 s");
                await Task.Delay(100);
            }
            Assert.All(daemons, d => Assert.False(d.HasExited));
            Assert.All(fetchers, d => Assert.False(Directory.Exists(Path.Combine(d.DataDir, "images", hash))));
            Assert.True(Directory.Exists(Path.Combine(daemons[1].DataDir, "images", hash)));

            // Stopping the VM stops copies still waiting for their image, promptly.
            (code, output) = await Cli.RunAsync(["vm", "stop", "stuck", "--socket", daemons[0].Socket]);
            Assert.True(code == 0, output);
            // A daemon answers 404 only after the removal was applied and its copies were stopped (both on its loop;
            // a copy that does not stop within 5 s is logged then).
            foreach (var daemon in daemons)
            {
                deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
                while (true)
                {
                    using var client = daemon.Client();
                    try
                    {
                        await client.GetAsync("/v1/vms/stuck", ControlJsonContext.Default.VmBody);
                    }
                    catch (ControlException)
                    {
                        break;
                    }
                    Assert.True(DateTime.UtcNow < deadline, $"{daemon.Address} still shows the VM");
                    await Task.Delay(100);
                }
            }
            await Task.Delay(500); // the console logger writes from a queue
            Assert.All(daemons, d => Assert.DoesNotContain("did not stop", d.Log, StringComparison.Ordinal));
            Assert.All(daemons, d => Assert.False(d.HasExited));
            // No copy waits for the image any more: the fetches stop (retries come at least every 10 s otherwise).
            static int Tries(DaemonProcess d) => d.Log.Split('\n').Count(l => l.Contains("fetch from", StringComparison.Ordinal));
            var tries = fetchers.Select(Tries).ToList();
            await Task.Delay(TimeSpan.FromSeconds(11));
            Assert.Equal(tries, fetchers.Select(Tries).ToList());
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
            ImageStore.ForceDelete(image);
        }
    }

    [KvmFact]
    public async Task When_the_creator_cannot_send_the_image_a_node_gets_it_from_another_holder_in_the_placement()
    {
        string image = Directory.CreateTempSubdirectory("p2preplay-image-").FullName;
        // Daemon 1 creates the VM but refuses to send images; daemon 0 holds the same image (from an earlier VM).
        var daemons = await ClusterProcessTests.FormClusterAsync(3,
            environmentOf: i => i == 1 ? new Dictionary<string, string> { ["P2PREPLAY_FAILPOINTS"] = "image-serve-refuse" } : null);
        try
        {
            Directory.CreateDirectory(Path.Combine(image, "bin"));
            File.Copy(Repo.Guest("musl", "ticker"), Path.Combine(image, "bin", "ticker"));
            string hash = ImageHash.Compute(image);
            var ids = new List<string>();
            foreach (var daemon in daemons) ids.Add((await daemon.StatusAsync()).NodeId);

            var (code, output) = await Cli.RunAsync(["vm", "create", "warm", "--replicas", "0", "--image", image, "--socket", daemons[0].Socket, "--", "/bin/ticker", "1", "1"]);
            Assert.True(code == 0, output);
            (code, output) = await Cli.RunAsync(["vm", "stop", "warm", "--socket", daemons[0].Socket]);
            Assert.True(code == 0, output);
            Assert.True(Directory.Exists(Path.Combine(daemons[0].DataDir, "images", hash)));
            // "warm" may have run on daemon 2 too: take the image away from it, so it must fetch it.
            ImageStore.ForceDelete(Path.Combine(daemons[2].DataDir, "images", hash));

            (code, output) = await Cli.RunAsync(["vm", "create", "relay", "--replicas", "2", "--image", image, "--socket", daemons[1].Socket, "--", "/bin/ticker", "20", "10"]);
            Assert.True(code == 0, output);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            var views = new List<VmBody>();
            while (DateTime.UtcNow < deadline)
            {
                views.Clear();
                foreach (var daemon in daemons) views.Add(await ShowAsync(daemon, "relay"));
                if (views.All(v => v.State.StartsWith("exited ", StringComparison.Ordinal) || v.State.StartsWith("finished (", StringComparison.Ordinal) || v.Error is not null)) break;
                await Task.Delay(100);
            }
            Assert.All(views, v => Assert.Null(v.Error));
            Assert.Equal("exited 0", views.Single(v => v.Role == "primary").State);
            Assert.All(views.Where(v => v.Role == "replica"), v => Assert.Matches(@"finished \(exited 0, \d+ digests verified\)", v.State));
            // Daemon 2 asked the creator first, was refused, and got it from daemon 0 (a replica or the primary).
            string log = daemons[2].Log;
            Assert.Contains($"image {hash}: fetch from {ids[1]} failed (attempt 1): refused: failpoint image-serve-refuse", log, StringComparison.Ordinal);
            Assert.Contains($"image {hash}: fetched from {ids[0]}", log, StringComparison.Ordinal);
            Assert.Equal(hash, ImageHash.Compute(Path.Combine(daemons[2].DataDir, "images", hash)));
        }
        finally
        {
            foreach (var daemon in daemons) await daemon.DisposeAsync();
            ImageStore.ForceDelete(image);
        }
    }
}
