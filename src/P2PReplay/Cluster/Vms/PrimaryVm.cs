using System.Diagnostics;
using Microsoft.Extensions.Logging;
using P2PReplay.Replay;
using P2PReplay.Transport;
using P2PReplay.Vmm;

namespace P2PReplay.Cluster.Vms;

/// <summary>
/// This node's primary copy of a VM: runs it in a microVM on its own thread with a recorder whose log goes into
/// a <see cref="LogBuffer"/>, streamed to every replica by a <see cref="LogStreamer"/>.
/// </summary>
internal sealed class PrimaryVm : ILiveCopy, IDisposable
{
    private readonly Placement placement;
    private readonly VmSpec spec;
    private readonly ILogger logger;
    private readonly LogBuffer log = new();
    private readonly VmOutput output = new();
    private readonly LogStreamer streamer;
    private readonly Thread thread;
    private readonly MachineHandle vm = new();
    private readonly VmConnections connections;
    private readonly SwitchoverHold hold = new();

    public string State { get; private set; } = "starting";
    public string? Error { get; private set; }
    public long Exits => vm.Exits;
    public long LogBytes => log.Length;
    public LogStreamer Streamer => streamer;
    public VmConnections Connections => connections;
    public Placement Placement => placement;
    public LogBuffer Log => log;
    public LogStreamer? LiveStreamer => streamer;
    public MachineHandle Machine => vm;
    public SwitchoverHold Hold => hold;

    /// <summary>The VM's image root once present in the local store (null: no image); the VM starts only then.</summary>
    public Task<string>? Image { get; init; }
    private readonly CancellationTokenSource disposing = new();

    public PrimaryVm(Placement placement, VmSpec spec, IReadOnlyList<(string NodeId, string Address)> replicaAddresses, PeerNetwork network, ILogger logger, Func<long> nowMs, VmNetLink? netLink = null, long checkpointEveryBytes = 64L << 20)
    {
        this.placement = placement;
        this.spec = spec;
        this.logger = logger;
        streamer = new LogStreamer(placement.Vm, placement.Epoch, log, replicaAddresses, network, nowMs, () => Exits)
        {
            CheckpointEveryBytes = checkpointEveryBytes,
            CheckpointAdopted = (node, c) => VmLog.CheckpointAdopted(logger, placement.Vm, node, c.TailOffset, c.Encoded.Length),
        };
        connections = new VmConnections(placement.Vm, netLink ?? new VmNetLink(network, network.AdvertisedAddress, ""), () => vm.Exits, nowMs) { Hold = hold };
        streamer.Acked = connections.Wake;
        thread = new Thread(Run) { IsBackground = true, Name = $"vm {placement.Vm}" };
    }

    public void Start()
    {
        thread.Start();
        streamer.Start();
    }

    private void Run()
    {
        try
        {
            string? root = null;
            if (Image is { } image)
            {
                State = "fetching image";
                root = image.WaitAsync(disposing.Token).GetAwaiter().GetResult();
            }
            byte[] program = File.ReadAllBytes(root is null ? spec.ProgramPath : Path.Combine(root, spec.ProgramPath.TrimStart('/')));
            if (ImageHash.Of(program) != spec.ProgramSha256)
                throw new VmImageException($"{spec.ProgramPath} on this node is not the program the VM was created with (sha256 {spec.ProgramSha256})");
            var (cpuid, hostCpu) = MicroVm.ProbeHost();
            var config = new VmConfiguration(program, spec.ProgramPath, spec.Arguments, spec.Environment, root, (ulong)spec.MemoryBytes) { Cpuid = cpuid };
            var header = RecordingSession.BuildHeader(config, cpuid, hostCpu, 4096, rateLimited: true);
            if (spec.ImageHash is { } wanted && header.ImageSha256 != wanted)
                throw new VmImageException($"the image in this node's store hashes to {header.ImageSha256}, not {wanted}");
            using var recorder = new Recorder(new LogBufferStream(log), header);
            var host = new RecordingHost(new VmHost(output, () => vm.Exits, connections), recorder);
            using var machine = MicroVm.Create(config, host, null);
            vm.Set(machine);
            try
            {
                RecordingSession.Attach(machine, recorder);
                machine.Runner.Observer = LiveExitHook(recorder, log, streamer);
                connections.GoLive(placement.Epoch, streamer.ReleasedExit, FlushBeforeWait(recorder, log, streamer, () => machine.Runner.Exits));
                State = "running";
                var status = machine.Run();
                // Paused for a planned switchover: parked (log flushed) until it is called off or this copy goes.
                while (status is null && hold.ParkAfterPause(() => FlushAll(recorder, log, streamer, machine.Runner.Exits))) status = machine.Run();
                State = status is null ? "stopped" : $"exited {status.ShellStatus}";
            }
            finally
            {
                vm.Set(null);
            }
        }
        catch (OperationCanceledException) when (disposing.IsCancellationRequested || Image?.IsCanceled == true)
        {
            State = "stopped";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            State = "failed";
            Error = e.Message;
            VmLog.PrimaryFailed(logger, placement.Vm, e.Message);
        }
        finally
        {
            log.Complete();
        }
    }

    /// <summary>
    /// After each exit of a recorded run: the recorder's step, then, at least every 2 ms of guest activity, ship the
    /// log (whole chunks ending after this exit) and note which exit it covers (output commit, lag).
    /// </summary>
    public static RecordingSession.ExitHook LiveExitHook(Recorder recorder, LogBuffer log, LogStreamer streamer)
    {
        long lastFlush = Stopwatch.GetTimestamp();
        return new RecordingSession.ExitHook((exit, exited) =>
        {
            recorder.AfterExit(exit, exited);
            if (exited || Stopwatch.GetElapsedTime(lastFlush).TotalMilliseconds >= 2)
            {
                if (!exited) recorder.Flush();
                log.Mark(exit);
                streamer.Marked(exit);
                lastFlush = Stopwatch.GetTimestamp();
            }
        });
    }

    /// <summary>Between exits (vCPU thread): the log covers every exit so far, shipped.</summary>
    public static void FlushAll(Recorder recorder, LogBuffer log, LogStreamer streamer, long exits)
    {
        recorder.Flush();
        log.Mark(exits);
        streamer.Marked(exits);
    }

    /// <summary>Before the guest waits for the network (vCPU thread): ship the log so far, which covers every exit
    /// before the current one, so output written there can be released while the guest waits.</summary>
    public static Action FlushBeforeWait(Recorder recorder, LogBuffer log, LogStreamer streamer, Func<long> currentExit) => () =>
    {
        long covered = currentExit() - 1;
        if (covered < 0) return;
        recorder.Flush();
        log.Mark(covered);
        streamer.Marked(covered);
    };

    public void OnAck(string nodeId, VmMessage ack)
    {
        if (streamer.OnAck(nodeId, ack)) VmLog.ReplicaReportsDivergence(logger, placement.Vm, nodeId);
    }

    public byte[] ReleasedOutput() => output.UpTo(streamer.ReleasedExit());

    public void Dispose()
    {
        disposing.Cancel();
        connections.Dispose();
        streamer.Dispose();
        hold.Dispose();
        vm.Pause();
        if (!thread.Join(TimeSpan.FromSeconds(5))) VmLog.SlowStop(logger, placement.Vm, "primary");
    }
}
