using Microsoft.Extensions.Logging;
using P2PReplay.Linux;
using P2PReplay.Replay;
using P2PReplay.Replay.Format;
using P2PReplay.Transport;
using P2PReplay.Vmm;

namespace P2PReplay.Cluster.Vms;

/// <summary>
/// This node's replica of a VM: receives the primary's log as it is written and replays it live in its own
/// microVM, checking every digest, acknowledging what it holds every 50 ms. Promoted (failover), it replays what it
/// received, then the same VM goes on live: its recorder continues the same log, streamed to the other replicas.
/// </summary>
internal sealed class ReplicaVm : ILiveCopy, IDisposable
{
    private static readonly TimeSpan AckInterval = TimeSpan.FromMilliseconds(50);

    private readonly PeerNetwork network;
    private readonly ILogger logger;
    private readonly Func<long> nowMs;
    /// <summary>Set once the replica knows where it starts: the log's start, or a checkpoint's tail offset.</summary>
    private volatile LogBuffer? received;
    private volatile LiveLogStream? stream;
    private readonly TaskCompletionSource<Checkpoint?> startFrom = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CheckpointAssembly assembly = new();
    /// <summary>The latest checkpoint this copy holds (started from, took, or was given): a promoted copy starts new
    /// replicas from it, and keeps the log from its tail offset.</summary>
    private volatile Checkpoint? checkpoint;
    private volatile bool checkpointWanted;
    private readonly VmOutput output = new();
    private readonly CancellationTokenSource stopping = new();
    private readonly Thread thread;
    private Task? acks;
    private readonly MachineHandle vm = new();
    private readonly VmConnections connections;
    private readonly SwitchoverHold hold = new();
    /// <summary>Released when log data arrives: the acknowledgement goes out at once (output commit waits for it).</summary>
    private readonly SemaphoreSlim ackNow = new(0);

    private volatile Placement placement;
    private volatile string primaryAddress;
    private volatile Promotion? promotion;
    private volatile LogStreamer? streamer;

    private sealed record Promotion(Placement Placement, IReadOnlyList<(string NodeId, string Address)> Replicas);

    public ReplicaState State { get; private set; } = ReplicaState.Waiting;
    public string? Error { get; private set; }
    public long ReplayedExits => vm.Exits;
    public long ReceivedBytes => stream?.Received ?? 0;

    /// <summary>Where the log this copy holds starts (a checkpoint's tail offset, or 0).</summary>
    public long LogStart => received?.Start ?? 0;

    public Checkpoint? LatestCheckpoint => streamer?.Latest ?? checkpoint;

    /// <summary>Passed on to the streamer when promoted.</summary>
    public long CheckpointEveryBytes { get; init; } = 64L << 20;
    public long PrimaryExits { get; private set; }
    public long PrimaryLogBytes { get; private set; }
    public long LastHeardMs { get; private set; }
    public VmOutput Output => output;
    public string? ExitStatus { get; private set; }
    public Placement Placement => placement;
    public VmConnections Connections => connections;
    public LogBuffer Log => received ?? throw new InvalidOperationException("no log yet");
    public LogStreamer? LiveStreamer => WentLiveAtExit is null ? null : streamer;
    public MachineHandle Machine => vm;
    public SwitchoverHold Hold => hold;

    /// <summary>Promoted and now running live as the primary.</summary>
    public LogStreamer? Streamer => streamer;
    public bool Promoted => promotion is not null;
    public long? WentLiveAtExit { get; private set; }

    /// <summary>Fault injection for tests (P2PREPLAY_FAILPOINTS=replica-corrupt-random): this replica's VM sees
    /// wrong random bytes, as a faulty machine would, so its replay must diverge and be caught.</summary>
    public bool CorruptRandomInput { get; init; }

    /// <summary>Fault injection (P2PREPLAY_FAILPOINTS=replica-corrupt-log): one bit of received log data is flipped,
    /// once per daemon process, as a corrupt transfer would; the replay must fail cleanly and the copy be replaced.</summary>
    public bool CorruptLogOnce { get; init; }

    private static int logCorrupted;

    /// <summary>The VM's image root once present in the local store (null: no image); the replay starts only then.</summary>
    public Task<string>? Image { get; init; }

    public ReplicaVm(Placement placement, string primaryAddress, PeerNetwork network, ILogger logger, Func<long> nowMs, VmNetLink? netLink = null)
    {
        this.placement = placement;
        this.primaryAddress = primaryAddress;
        this.network = network;
        this.logger = logger;
        this.nowMs = nowMs;
        LastHeardMs = nowMs();
        connections = new VmConnections(placement.Vm, netLink ?? new VmNetLink(network, network.AdvertisedAddress, ""), () => vm.Exits, nowMs) { Hold = hold };
        thread = new Thread(Run) { IsBackground = true, Name = $"replica {placement.Vm}" };
    }

    public void Start()
    {
        thread.Start();
        acks = Task.Run(AckLoopAsync);
    }

    /// <summary>Log data or a heartbeat from the primary (network thread; the caller checked sender and epoch).</summary>
    public void OnMessage(VmMessage message)
    {
        LastHeardMs = nowMs();
        switch (message.Type)
        {
            case VmMessageType.LogData:
                if (stream is null)
                {
                    // Not started: from the log's start, or (the log there is gone) from the checkpoint that comes first.
                    if (message.Offset != 0) break;
                    StartWith(null);
                }
                if (CorruptLogOnce && message.Offset > 0 && message.Data.Length > 64 && Interlocked.Exchange(ref logCorrupted, 1) == 0)
                {
                    byte[] corrupt = message.Data.ToArray();
                    corrupt[corrupt.Length / 2] ^= 0x10;
                    stream!.Offer(message.Offset, corrupt);
                    if (ackNow.CurrentCount == 0) ackNow.Release();
                    break;
                }
                // A gap or repeat is ignored: the ack tells the primary where to resume.
                stream!.Offer(message.Offset, message.Data.Span);
                if (ackNow.CurrentCount == 0) ackNow.Release();
                break;
            case VmMessageType.CheckpointData:
                Checkpoint? complete;
                try
                {
                    complete = assembly.Offer(message.Exit, message.Offset, message.LogBytes, message.Data.Span);
                }
                catch (CheckpointFormatException e)
                {
                    VmLog.BadCheckpoint(logger, placement.Vm, e.Message);
                    break;
                }
                if (complete is null) break;
                if (stream is null) StartWith(complete);
                else if (checkpoint is null || complete.TailOffset > checkpoint.TailOffset) checkpoint = complete;
                if (ackNow.CurrentCount == 0) ackNow.Release();
                break;
            case VmMessageType.CheckpointRequest:
                if (stream is not null && promotion is null) checkpointWanted = true;
                break;
            case VmMessageType.Heartbeat:
                PrimaryExits = message.Exit;
                PrimaryLogBytes = (long)message.LogBytes;
                // The primary dropped its log before this: drop ours too, but keep what our own checkpoint and our
                // replay still need (a promoted copy ships from its checkpoint's tail offset on).
                if (stream is { } s && checkpoint is { } kept && received is { } log)
                    log.TruncateBefore(Math.Min((long)message.Offset, Math.Min(s.ReadPosition, kept.TailOffset)));
                break;
        }
    }

    private void StartWith(Checkpoint? from)
    {
        var log = new LogBuffer(from?.TailOffset ?? 0);
        received = log;
        stream = new LiveLogStream(log);
        checkpoint = from;
        startFrom.TrySetResult(from);
    }

    /// <summary>Another replica became primary (a failover): follow it at the new epoch.</summary>
    public void Retarget(Placement next, string nextPrimaryAddress)
    {
        placement = next;
        primaryAddress = nextPrimaryAddress;
        LastHeardMs = nowMs();
    }

    /// <summary>This replica becomes the primary at the new epoch: replay what was received, then go live.</summary>
    public void Promote(Placement next, IReadOnlyList<(string NodeId, string Address)> replicas)
    {
        if (promotion is not null || State is ReplicaState.Diverged or ReplicaState.Failed) return;
        // Never started (no log, no checkpoint came): nothing to take over with.
        if (received is not { } log || stream is not { } s) return;
        promotion = new Promotion(next, replicas);
        placement = next;
        // Heartbeats start now, so the other replicas follow this copy while it replays what it holds (its log
        // is shipped once it runs live): a long catch-up is not mistaken for another lost primary.
        var started = new LogStreamer(next.Vm, next.Epoch, log, replicas, network, nowMs, () => ReplayedExits)
        {
            Acked = connections.Wake,
            InitialCheckpoint = checkpoint,
            CheckpointEveryBytes = CheckpointEveryBytes,
            CheckpointAdopted = (node, c) => VmLog.CheckpointAdopted(logger, next.Vm, node, c.TailOffset, c.Encoded.Length),
        };
        started.Start();
        streamer = started;
        // No more log will come from the old primary: the replay drains what it holds, then the VM goes live.
        s.Close(abandon: false);
    }

    /// <summary>As the promoted primary, the placement's replicas changed (repair).</summary>
    public void UpdateReplicas(Placement next, IReadOnlyList<(string NodeId, string Address)> replicas)
    {
        if (promotion is null) return;
        promotion = new Promotion(next, replicas);
        placement = next;
        streamer?.SetReplicas(replicas);
    }

    private void Run()
    {
        Recorder? recorder = null;
        try
        {
            Checkpoint? from;
            try
            {
                from = startFrom.Task.Wait(Timeout.Infinite, stopping.Token) ? startFrom.Task.Result : null;
            }
            catch (OperationCanceledException)
            {
                State = ReplicaState.Finished;
                ExitStatus = "stopped before it started";
                return;
            }
            string? root = Image?.WaitAsync(stopping.Token).GetAwaiter().GetResult();
            var stream = this.stream!;
            var received = this.received!;
            Vmm.Snapshots.VmSnapshot? snapshot = null;
            if (from is not null)
            {
                snapshot = Vmm.Snapshots.VmSnapshot.Decode(from.Snapshot);
                connections.RestoreReplicaState(from.Connections);
                VmLog.StartsFromCheckpoint(logger, placement.Vm, from.TailOffset, snapshot.Exits, from.Encoded.Length);
            }
            using var replayer = snapshot is null ? new Replayer(stream) : new Replayer(stream, snapshot.Resume);
            var config = RecordingSession.RecreateConfiguration(replayer.Header, root, null);
            var vmHost = new VmHost(output, () => vm.Exits, connections);
            IHostEnvironment replaying = new ReplayingHost(replayer, vmHost) { NetworkObserver = connections };
            if (CorruptRandomInput) replaying = new CorruptRandomHost(replaying);
            var host = new PromotableHost(replaying, () => GoLive(replayer, vmHost, ref recorder));
            using var machine = snapshot is null ? MicroVm.Create(config, host, null) : MicroVm.Restore(config, snapshot, host, null);
            vm.Set(machine);
            try
            {
            RecordingSession.Attach(machine, replayer);
            RecordingSession.ExitHook? live = null;
            machine.Runner.Observer = new RecordingSession.ExitHook((exit, exited) =>
            {
                if (live is null && host.Live) live = PrimaryVm.LiveExitHook(recorder!, received, streamer!);
                if (live is not null)
                {
                    live.AfterExit(exit, exited);
                    return;
                }
                try
                {
                    replayer.AfterExit(exit, exited);
                    if (checkpointWanted && !exited)
                    {
                        checkpointWanted = false;
                        TakeCheckpoint(machine, replayer);
                    }
                }
                catch (ReplayTruncatedException) when (promotion is not null && replayer.AtEndOfLog)
                {
                    // Everything received is replayed and verified: from the next exit on, this copy runs live.
                    host.SwitchToLive();
                    live = PrimaryVm.LiveExitHook(recorder!, received, streamer!);
                    live.AfterExit(exit, exited);
                }
            });
            State = ReplicaState.Replaying;
            var status = machine.Run();
            // Live and paused for a planned switchover: parked (log flushed) until it is called off or this copy goes.
            while (status is null && host.Live && hold.ParkAfterPause(() => PrimaryVm.FlushAll(recorder!, received, streamer!, machine.Runner.Exits))) status = machine.Run();
            State = ReplicaState.Finished;
            ExitStatus = status is null ? "stopped" : $"exited {status.ShellStatus}, {replayer.DigestsChecked} digests verified{(host.Live ? $", live since exit {WentLiveAtExit}" : "")}";
            }
            finally
            {
                vm.Set(null);
            }
        }
        catch (ReplayDivergenceException e)
        {
            State = ReplicaState.Diverged;
            Error = e.Message;
            VmLog.ReplicaDiverged(logger, placement.Vm, e.Message);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested || Image?.IsCanceled == true)
        {
            State = ReplicaState.Finished;
            ExitStatus = "stopped";
        }
        catch (ReplayTruncatedException) when (stopping.IsCancellationRequested || promotion is null)
        {
            State = ReplicaState.Finished;
            ExitStatus = "stopped";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            State = ReplicaState.Failed;
            Error = e is LogFormatException ? $"unreadable log from the primary: {e.Message}" : e.Message;
            VmLog.ReplicaFailed(logger, placement.Vm, Error);
        }
        finally
        {
            recorder?.Dispose();
            if (streamer is not null) this.received?.Complete();
        }
    }

    /// <summary>
    /// The primary asked for a checkpoint (vCPU thread, between exits of the replay): the VM snapshot and what this
    /// copy knows of the connections, now; encoding and sending happen off the vCPU thread, so the replay pauses only
    /// for the capture.
    /// </summary>
    private void TakeCheckpoint(MicroVm machine, Replayer replayer)
    {
        Vmm.Snapshots.VmSnapshot snapshot;
        byte[] connectionState;
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            snapshot = machine.CaptureSnapshot(replayer.ResumePoint());
            connectionState = connections.CaptureReplicaState();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            VmLog.CheckpointFailed(logger, placement.Vm, e.Message);
            return;
        }
        double captureMs = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        long exits = machine.Runner.Exits;
        string address = primaryAddress;
        var current = placement;
        _ = Task.Run(async () =>
        {
            try
            {
                var made = Checkpoint.Create(snapshot.TailOffset, exits, snapshot.Encode(), connectionState);
                if (checkpoint is null || made.TailOffset > checkpoint.TailOffset) checkpoint = made;
                VmLog.CheckpointTaken(logger, current.Vm, exits, made.TailOffset, made.Encoded.Length, captureMs);
                await made.SendAsync(network, address, current.Vm, current.Epoch, stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
            }
        });
    }

    /// <summary>The switch (on the vCPU thread): a recorder continuing the same log, streamed to the other replicas.</summary>
    private IHostEnvironment GoLive(Replayer replayer, VmHost vmHost, ref Recorder? recorder)
    {
        var next = promotion ?? throw new InvalidOperationException("not promoted");
        var machine = vm.Current ?? throw new InvalidOperationException("no machine to take live");
        long exit = machine.Runner.Exits;
        WentLiveAtExit = exit;
        var received = this.received!;
        recorder = new Recorder(new LogBufferStream(received), replayer) { Process = machine.Process };
        recorder.CurrentExit = () => machine.Runner.Exits;
        // The received log covers every exit before this one.
        received.Mark(Math.Max(0, exit - 1));
        var started = streamer ?? throw new InvalidOperationException("promoted without a streamer");
        var liveRecorder = recorder;
        connections.GoLive(next.Placement.Epoch, started.ReleasedExit, PrimaryVm.FlushBeforeWait(liveRecorder, received, started, () => machine.Runner.Exits));
        VmLog.WentLive(logger, next.Placement.Vm, next.Placement.Epoch, exit, received.Length);
        return new RecordingHost(vmHost, recorder);
    }

    private async Task AckLoopAsync()
    {
        while (!stopping.IsCancellationRequested && promotion is null)
        {
            try
            {
                var current = placement;
                await network.SendAsync(primaryAddress, ChannelKind.VmLog,
                    VmMessage.Ack(current.Vm, current.Epoch, (ulong)ReceivedBytes, ReplayedExits, State).Encode(), compress: false, stopping.Token).ConfigureAwait(false);
                await ackNow.WaitAsync(AckInterval, stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    public void OnAck(string nodeId, VmMessage ack)
    {
        if (streamer?.OnAck(nodeId, ack) == true) VmLog.ReplicaReportsDivergence(logger, placement.Vm, nodeId);
    }

    public byte[] ReleasedOutput() => streamer is { } live ? output.UpTo(live.ReleasedExit()) : output.UpTo(long.MaxValue);

    public void Dispose()
    {
        stopping.Cancel();
        connections.Dispose();
        streamer?.Dispose();
        hold.Dispose();
        stream?.Close(abandon: true);
        vm.Pause();
        if (!thread.Join(TimeSpan.FromSeconds(5))) VmLog.SlowStop(logger, placement.Vm, "replica");
        try
        {
            acks?.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
        stopping.Dispose();
    }
}

/// <summary>
/// The host a replica's VM sees: the replayed log while it lasts; on promotion, once the log is used up, the
/// real host through a recorder (the switch happens at a syscall asking for input, or after an exit).
/// </summary>
internal sealed class PromotableHost(IHostEnvironment replaying, PromotableHost.LiveFactory goLive) : IHostEnvironment
{
    public delegate IHostEnvironment LiveFactory();

    private IHostEnvironment? live;

    public bool Live => live is not null;

    public void SwitchToLive() => live ??= goLive();

    private T Call<T>(Func<IHostEnvironment, T> call)
    {
        if (live is not null) return call(live);
        try
        {
            return call(replaying);
        }
        catch (ReplayTruncatedException)
        {
            // The log ran out in this syscall: go live if promoted (goLive throws otherwise), and answer live.
            SwitchToLive();
            return call(live!);
        }
    }

    public long RealtimeNanoseconds() => Call(h => h.RealtimeNanoseconds());
    public long MonotonicNanoseconds() => Call(h => h.MonotonicNanoseconds());
    public void Sleep(long nanoseconds) => Call(h => { h.Sleep(nanoseconds); return 0; });
    public int ReadStdin(Span<byte> buffer)
    {
        if (live is not null) return live.ReadStdin(buffer);
        try
        {
            return replaying.ReadStdin(buffer);
        }
        catch (ReplayTruncatedException)
        {
            SwitchToLive();
            return live!.ReadStdin(buffer);
        }
    }

    public void GetRandomBytes(Span<byte> buffer)
    {
        if (live is not null)
        {
            live.GetRandomBytes(buffer);
            return;
        }
        try
        {
            replaying.GetRandomBytes(buffer);
        }
        catch (ReplayTruncatedException)
        {
            SwitchToLive();
            live!.GetRandomBytes(buffer);
        }
    }

    public void WriteOutput(int fd, ReadOnlySpan<byte> data)
    {
        if (live is not null) live.WriteOutput(fd, data);
        else replaying.WriteOutput(fd, data);
    }

    /// <summary>The network of whichever host is current (replayed events, then the live network); the log may end
    /// inside a network wait (the primary ships its log before it waits), and the wait goes on live.</summary>
    public Linux.Net.IHostNetwork Network => network ??= new SwitchingNetwork(this);

    private Linux.Net.IHostNetwork? network;

    private IHostEnvironment Replaying => replaying;

    private sealed class SwitchingNetwork(PromotableHost host) : Linux.Net.IHostNetwork
    {
        private Linux.Net.IHostNetwork Current => (host.live ?? host.Replaying).Network;

        public void Listen(int port) => Current.Listen(port);

        public void Unlisten(int port) => Current.Unlisten(port);

        public IReadOnlyList<Linux.Net.NetEvent> Poll(long timeoutNs)
        {
            if (host.live is { } live) return live.Network.Poll(timeoutNs);
            try
            {
                return host.Replaying.Network.Poll(timeoutNs);
            }
            catch (ReplayTruncatedException)
            {
                host.SwitchToLive();
                return host.live!.Network.Poll(timeoutNs);
            }
        }

        public void Send(long connection, ReadOnlySpan<byte> data) => Current.Send(connection, data);

        public void ShutdownSend(long connection) => Current.ShutdownSend(connection);

        public void Close(long connection) => Current.Close(connection);
    }
}

/// <summary>Fault injection: flips a bit of every random buffer the guest gets (see <see cref="ReplicaVm.CorruptRandomInput"/>).</summary>
internal sealed class CorruptRandomHost(IHostEnvironment inner) : IHostEnvironment
{
    public long RealtimeNanoseconds() => inner.RealtimeNanoseconds();
    public long MonotonicNanoseconds() => inner.MonotonicNanoseconds();
    public void Sleep(long nanoseconds) => inner.Sleep(nanoseconds);
    public int ReadStdin(Span<byte> buffer) => inner.ReadStdin(buffer);
    public void WriteOutput(int fd, ReadOnlySpan<byte> data) => inner.WriteOutput(fd, data);
    public Linux.Net.IHostNetwork Network => inner.Network;

    public void GetRandomBytes(Span<byte> buffer)
    {
        inner.GetRandomBytes(buffer);
        if (!buffer.IsEmpty) buffer[0] ^= 0x01;
    }
}
