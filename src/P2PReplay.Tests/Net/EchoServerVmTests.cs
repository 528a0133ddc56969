using P2PReplay.Cli;
using P2PReplay.Linux.Net;
using P2PReplay.Replay;
using P2PReplay.Tests.Fakes;
using P2PReplay.Tests.Support;
using P2PReplay.Vmm;

namespace P2PReplay.Tests.Net;

/// <summary>The echo_server guest in a VM on the in-memory network: correct replies, then record and replay it.</summary>
public sealed class EchoServerVmTests
{
    private const int Port = 8080;

    private static ScriptedClients Clients()
    {
        var clients = new ScriptedClients(Port,
            ["SET a 1\n", "GET a\n", "ECHO hello there\n"],
            ["GET a\nGET b\n", "SE", "T b two words\nGE", "T b\n"],
            ["ECHO x\n", "BOGUS\n", "QUIT\n"]);
        clients.StayOpen.Add(2);
        return clients;
    }

    public static TheoryData<string, string> Modes() => new()
    {
        { "musl", "poll" }, { "musl", "epoll" }, { "musl", "select" }, { "glibc", "poll" }, { "glibc", "epoll" }, { "glibc", "select" },
    };

    private static VmConfiguration Config(string program, string mode)
    {
        var (cpuid, _) = MicroVm.ProbeHost();
        return new VmConfiguration(File.ReadAllBytes(program), program, [program, Port.ToString(), mode], [], null, VmConfiguration.DefaultMemorySize) { Cpuid = cpuid };
    }

    private static void AssertReplies(ScriptedClients c, string stdout)
    {
        Assert.Contains("listening on port 8080", stdout);
        Assert.Equal("OK\nVALUE 1\nhello there\n", c.Replies(0));
        Assert.Equal("VALUE 1\nNONE\nOK\nVALUE two words\n", c.Replies(1));
        Assert.Equal("x\nERR\nBYE\n", c.Replies(2));
        Assert.Contains("served 10 requests from 3 clients", stdout);
    }

    [KvmTheory]
    [MemberData(nameof(Modes))]
    public void Serves_several_clients(string libc, string mode)
    {
        var clients = Clients();
        var host = new FakeHost { ClockStep = 1000, Network = clients.Network };
        var run = GuestRunner.InVm(Repo.Guest(libc, "echo_server"), [Port.ToString(), mode], host: host);
        Assert.True(run.ExitCode == 0, GuestRunner.Describe(run));
        AssertReplies(clients, run.Stdout);
        Assert.Empty(clients.Network.Listening); // the guest closed its listening socket: the port is given up
        Assert.DoesNotContain(run.Unsupported ?? [], u => u.Name != "rseq"); // glibc probes rseq at start-up
    }

    [KvmTheory]
    [MemberData(nameof(Modes))]
    public void Recorded_server_replays_exactly_without_a_network(string libc, string mode)
    {
        string program = Repo.Guest(libc, "echo_server");
        var clients = Clients();
        var (cpuid, hostCpu) = MicroVm.ProbeHost();
        // glibc reads the host CPU's CPUID where it cannot be trapped: record and replay on the same CPU.
        var config = Config(program, mode) with { HostCpu = hostCpu.CanTrapTimeStampCounter ? null : 0 };
        var log = new MemoryStream();
        var host = new FakeHost { ClockStep = 1000, Network = clients.Network };
        ulong recordedOutput;
        long recordedEvents;
        using (var recorder = new Recorder(log, RecordingSession.BuildHeader(config, cpuid, hostCpu, 16, rateLimited: false)))
        {
            using var vm = MicroVm.Create(config, new RecordingHost(host, recorder), null);
            RecordingSession.Attach(vm, recorder);
            var status = vm.Run() ?? throw new InvalidOperationException("paused");
            Assert.Equal(0, status.ShellStatus);
            recordedOutput = recorder.Output.Value;
            recordedEvents = recorder.Events;
        }
        AssertReplies(clients, host.StdoutText);
        int pollsWhileRecording = clients.Network.Polls;

        using var replayer = new Replayer(new MemoryStream(log.ToArray()));
        var observer = new InMemoryHostNetwork();
        var output = new FakeHost();
        var replayHost = new ReplayingHost(replayer, output) { NetworkObserver = observer };
        using (var vm = MicroVm.Create(config, replayHost, null))
        {
            RecordingSession.Attach(vm, replayer);
            var status = vm.Run() ?? throw new InvalidOperationException("paused");
            Assert.Equal(0, status.ShellStatus);
        }
        Assert.Equal(host.StdoutText, output.StdoutText);
        Assert.Equal(recordedOutput, replayer.Output.Value);
        Assert.Equal(recordedEvents, replayer.Events);
        Assert.True(replayer.DigestsChecked > 2, $"{replayer.DigestsChecked} digests checked");
        Assert.NotNull(replayer.Trailer);
        Assert.Equal(pollsWhileRecording, clients.Network.Polls); // the replay never asked the network
        for (int c = 0; c < 3; c++) Assert.Equal(clients.Replies(c), observer.SentText(100 + c));
        Assert.Empty(observer.Listening.Except([Port]));
    }

    private static byte[] Record(string program, string mode)
    {
        var config = Config(program, mode);
        var (cpuid, hostCpu) = MicroVm.ProbeHost();
        var log = new MemoryStream();
        var host = new FakeHost { ClockStep = 1000, Network = Clients().Network };
        using (var recorder = new Recorder(log, RecordingSession.BuildHeader(config, cpuid, hostCpu, 16, rateLimited: false)))
        {
            using var vm = MicroVm.Create(config, new RecordingHost(host, recorder), null);
            RecordingSession.Attach(vm, recorder);
            Assert.Equal(0, (vm.Run() ?? throw new InvalidOperationException("paused")).ShellStatus);
        }
        return log.ToArray();
    }

    [KvmFact]
    public void Altered_or_missing_network_input_is_a_divergence()
    {
        string program = Repo.Guest("musl", "echo_server");
        byte[] log = Record(program, "epoll");
        Assert.Equal(0, Recordings.Replay(log, program).Run.ExitCode);

        // The same connections under other ids: the guest's replies go elsewhere, which the output digest sees.
        byte[] renumbered = LogSurgery.RewriteFirstEvent(log, InputKind.Network, e =>
        {
            var events = NetworkEvents.Decode(e.Data).Select(n => n with { Connection = n.Connection + 1000 }).ToList();
            return e with { Data = NetworkEvents.Encode(events) };
        });
        Assert.Throws<ReplayDivergenceException>(() => Recordings.Replay(renumbered, program));
        Assert.Throws<ReplayDivergenceException>(() => Recordings.Replay(LogSurgery.DropEvents(log, InputKind.Network), program));
    }
}
