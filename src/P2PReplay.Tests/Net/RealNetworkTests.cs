using System.Net.Sockets;
using System.Text;
using P2PReplay.Cli;
using P2PReplay.Linux.Net;
using P2PReplay.Replay;
using P2PReplay.Tests.Fakes;
using P2PReplay.Tests.Support;
using P2PReplay.Vmm;

namespace P2PReplay.Tests.Net;

/// <summary>The echo_server guest behind a real host TCP port: real clients, recorded, then replayed without the network.</summary>
public sealed class RealNetworkTests
{
    private static string Ask(NetworkStream stream, string request, int replyLines)
    {
        stream.Write(Encoding.UTF8.GetBytes(request));
        var reply = new StringBuilder();
        var buffer = new byte[256];
        while (reply.ToString().Count(c => c == '\n') < replyLines)
        {
            int n = stream.Read(buffer);
            if (n == 0) break;
            reply.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
        return reply.ToString();
    }

    [KvmFact]
    public void Real_clients_are_served_and_the_recording_replays()
    {
        string program = Repo.Guest("musl", "echo_server");
        var (cpuid, hostCpu) = MicroVm.ProbeHost();
        var config = new VmConfiguration(File.ReadAllBytes(program), program, [program, "7000", "epoll"], [], null, VmConfiguration.DefaultMemorySize) { Cpuid = cpuid, HostCpu = hostCpu.CanTrapTimeStampCounter ? null : 0 };
        using var network = new RealHostNetwork(new Dictionary<int, int> { [7000] = 0 });
        var host = new FakeHost { ClockStep = 1000, Network = network };
        var log = new MemoryStream();
        ulong recordedOutput;
        using (var recorder = new Recorder(log, RecordingSession.BuildHeader(config, cpuid, hostCpu, 16, rateLimited: false)))
        {
            using var vm = MicroVm.Create(config, new RecordingHost(host, recorder), null);
            RecordingSession.Attach(vm, recorder);
            var run = Task.Run(vm.Run);
            int? port = null;
            for (int i = 0; i < 500 && (port = network.HostPort(7000)) is null; i++) Thread.Sleep(10);
            Assert.NotNull(port);
            using (var a = new TcpClient("127.0.0.1", port.Value))
            using (var b = new TcpClient("127.0.0.1", port.Value))
            {
                var sa = a.GetStream();
                var sb = b.GetStream();
                Assert.Equal("OK\n", Ask(sa, "SET k v\n", 1));
                Assert.Equal("VALUE v\nhi\n", Ask(sb, "GET k\nECHO hi\n", 2));
                b.Close();
                Assert.Equal("BYE\n", Ask(sa, "QUIT\n", 1));
            }
            Assert.True(run.Wait(TimeSpan.FromSeconds(30)), "the guest did not end");
            Assert.Equal(0, run.Result!.ShellStatus);
            recordedOutput = recorder.Output.Value;
        }
        Assert.Contains("served 4 requests from 2 clients", host.StdoutText);

        using var replayer = new Replayer(new MemoryStream(log.ToArray()));
        var observer = new InMemoryHostNetwork();
        var output = new FakeHost();
        using (var vm = MicroVm.Create(config, new ReplayingHost(replayer, output) { NetworkObserver = observer }, null))
        {
            RecordingSession.Attach(vm, replayer);
            Assert.Equal(0, (vm.Run() ?? throw new InvalidOperationException("paused")).ShellStatus);
        }
        Assert.Equal(host.StdoutText, output.StdoutText);
        Assert.Equal(recordedOutput, replayer.Output.Value);
        Assert.Equal("OK\nBYE\n", observer.SentText(1));
        Assert.Equal("VALUE v\nhi\n", observer.SentText(2));
    }

    [Fact]
    public void Expose_option_is_parsed()
    {
        var o = RunCommand.Parse(["--expose", "80:8080", "--expose", "443:0", "--", "prog"]);
        Assert.Equal(8080, o.Expose![80]);
        Assert.Equal(0, o.Expose[443]);
        foreach (string bad in new[] { "80", "0:80", "x:80", "80:70000", "80:8080:1", "-1:80" })
            Assert.Throws<UsageException>(() => RunCommand.Parse(["--expose", bad, "--", "prog"]));
    }
}
