using System.Diagnostics;
using Microsoft.Extensions.Logging;
using P2PReplay.Replay;
using P2PReplay.Transport;
using P2PReplay.Vmm;

namespace P2PReplay.Cluster.Vms;

/// <summary>What a replica last reported to its primary.</summary>
internal sealed record ReplicaProgress(string NodeId, string Address, ulong ReceivedBytes, long ReplayedExit, ReplicaState State, long LastAckMs);

/// <summary>
/// This node's primary copy of a VM: runs it in a microVM on its own thread with a recorder whose log goes into
/// a <see cref="LogBuffer"/>, and streams that log to every replica (one sender each) with heartbeats.
/// </summary>
internal sealed class PrimaryVm : IDisposable
{
    private static readonly TimeSpan HeartbeatInterval = TimeSpan.FromMilliseconds(100);
    private const int ChunkBytes = 256 * 1024;
    /// <summary>A replica silent for this long no longer holds output back (it is not live).</summary>
    public const long LiveAckMs = 2000;

    private readonly Placement placement;
    private readonly VmSpec spec;
    private readonly PeerNetwork network;
    private readonly ILogger logger;
    private readonly Func<long> nowMs;
    private readonly LogBuffer log = new();
    private readonly VmOutput output = new();
    private readonly Dictionary<string, ReplicaProgress> replicas = new(StringComparer.Ordinal);
    private readonly List<(long Exit, long AtMs)> exitTimes = [];
    private readonly Lock gate = new();
    private readonly CancellationTokenSource stopping = new();
    private readonly Thread thread;
    private readonly List<Task> senders = [];
    private MicroVm? vm;

    public string State { get; private set; } = "starting";
    public string? Error { get; private set; }
    public long Exits => vm?.Runner.Exits ?? 0;
    public long LogBytes => log.Length;
    public VmOutput Output => output;

    public PrimaryVm(Placement placement, VmSpec spec, IReadOnlyList<(string NodeId, string Address)> replicaAddresses, PeerNetwork network, ILogger logger, Func<long> nowMs)
    {
        this.placement = placement;
        this.spec = spec;
        this.network = network;
        this.logger = logger;
        this.nowMs = nowMs;
        foreach (var (id, address) in replicaAddresses) replicas[id] = new ReplicaProgress(id, address, 0, 0, ReplicaState.Waiting, nowMs());
        thread = new Thread(Run) { IsBackground = true, Name = $"vm {placement.Vm}" };
    }

    public void Start()
    {
        thread.Start();
        foreach (var replica in replicas.Values) senders.Add(Task.Run(() => SendLoopAsync(replica.NodeId, replica.Address)));
    }

    private void Run()
    {
        try
        {
            byte[] program = File.ReadAllBytes(spec.ProgramPath);
            if (ImageHash.Of(program) != spec.ProgramSha256)
                throw new VmImageException($"{spec.ProgramPath} on this node is not the program the VM was created with (sha256 {spec.ProgramSha256})");
            var (cpuid, hostCpu) = MicroVm.ProbeHost();
            var config = new VmConfiguration(program, spec.ProgramPath, spec.Arguments, spec.Environment, null, (ulong)spec.MemoryBytes) { Cpuid = cpuid };
            using var recorder = new Recorder(new LogBufferStream(log), RecordingSession.BuildHeader(config, cpuid, hostCpu, 4096, rateLimited: true));
            var host = new RecordingHost(new VmHost(output, () => vm?.Runner.Exits ?? 0), recorder);
            using var machine = MicroVm.Create(config, host, null);
            vm = machine;
            RecordingSession.Attach(machine, recorder);
            long lastFlush = Stopwatch.GetTimestamp();
            machine.Runner.Observer = new RecordingSession.ExitHook((exit, exited) =>
            {
                recorder.AfterExit(exit, exited);
                // Ship the log at least every 2 ms of guest activity, and mark how far it covers (output commit).
                if (exited || Stopwatch.GetElapsedTime(lastFlush).TotalMilliseconds >= 2)
                {
                    if (!exited) recorder.Flush();
                    log.Mark(exit);
                    lock (gate) exitTimes.Add((exit, nowMs()));
                    lastFlush = Stopwatch.GetTimestamp();
                }
            });
            State = "running";
            var status = machine.Run();
            State = status is null ? "stopped" : $"exited {status.ShellStatus}";
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

    private async Task SendLoopAsync(string replicaId, string address)
    {
        long sent = 0;
        long lastHeartbeat = 0;
        long lastProgressMs = nowMs();
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await log.WaitBeyondAsync(sent, HeartbeatInterval, stopping.Token).ConfigureAwait(false);
                // The replica says it holds less than we sent (a connection broke): resend from there.
                ReplicaProgress progress;
                lock (gate) progress = replicas[replicaId];
                if ((long)progress.ReceivedBytes < sent && nowMs() - lastProgressMs > 1000)
                {
                    sent = (long)progress.ReceivedBytes;
                    lastProgressMs = nowMs();
                }
                if ((long)progress.ReceivedBytes >= sent) lastProgressMs = nowMs();
                byte[] data = log.Read(sent, ChunkBytes);
                if (data.Length > 0)
                {
                    if (await network.SendAsync(address, ChannelKind.VmLog, VmMessage.LogData(placement.Vm, placement.Epoch, (ulong)sent, data).Encode(), compress: false, stopping.Token).ConfigureAwait(false))
                        sent += data.Length;
                }
                if (nowMs() - lastHeartbeat >= HeartbeatInterval.TotalMilliseconds)
                {
                    lastHeartbeat = nowMs();
                    await network.SendAsync(address, ChannelKind.VmLog, VmMessage.Heartbeat(placement.Vm, placement.Epoch, Exits, (ulong)log.Length, log.Completed).Encode(), compress: false, stopping.Token).ConfigureAwait(false);
                }
                if (data.Length == 0 && log.Completed && (long)progress.ReceivedBytes >= log.Length)
                {
                    await Task.Delay(HeartbeatInterval, stopping.Token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>A replica's acknowledgement (network thread).</summary>
    public void OnAck(string nodeId, VmMessage ack)
    {
        lock (gate)
        {
            if (!replicas.TryGetValue(nodeId, out var known)) return;
            replicas[nodeId] = known with { ReceivedBytes = ack.Offset, ReplayedExit = ack.Exit, State = (ReplicaState)ack.State, LastAckMs = nowMs() };
        }
        if ((ReplicaState)ack.State == ReplicaState.Diverged)
            VmLog.ReplicaReportsDivergence(logger, placement.Vm, nodeId);
    }

    public IReadOnlyList<ReplicaProgress> Replicas
    {
        get
        {
            lock (gate) return [.. replicas.Values];
        }
    }

    /// <summary>How many milliseconds ago the primary was at this exit (replica lag in time).</summary>
    public long LagMs(long replayedExit)
    {
        lock (gate)
        {
            foreach (var (exit, at) in exitTimes)
            {
                if (exit > replayedExit) return Math.Max(0, nowMs() - at);
            }
            return 0;
        }
    }

    /// <summary>
    /// Output commit: the output written up to the highest exit whose log every live replica has received.
    /// </summary>
    public byte[] ReleasedOutput()
    {
        long exit = long.MaxValue;
        long now = nowMs();
        lock (gate)
        {
            foreach (var replica in replicas.Values)
            {
                if (now - replica.LastAckMs > LiveAckMs || replica.State is ReplicaState.Diverged or ReplicaState.Failed) continue;
                exit = Math.Min(exit, log.ExitCoveredBy((long)replica.ReceivedBytes));
            }
        }
        return output.UpTo(exit);
    }

    public void Dispose()
    {
        stopping.Cancel();
        vm?.Runner.RequestPause();
        if (!thread.Join(TimeSpan.FromSeconds(5))) VmLog.SlowStop(logger, placement.Vm, "primary");
        try
        {
            Task.WaitAll([.. senders], TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
        stopping.Dispose();
    }
}
