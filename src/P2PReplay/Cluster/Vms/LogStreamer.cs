using P2PReplay.Transport;

namespace P2PReplay.Cluster.Vms;

/// <summary>What a replica last reported to its primary. <see cref="InSync"/>: it holds output back (see
/// <see cref="LogStreamer.ReleasedExit"/>).</summary>
internal sealed record ReplicaProgress(string NodeId, string Address, ulong ReceivedBytes, long ReplayedExit, ReplicaState State, long LastAckMs, bool Heard, bool InSync);

/// <summary>
/// The primary's side of the log stream: one sender per replica shipping the log's whole chunks from where that
/// replica says it is, heartbeats every 50 ms, acknowledgements, and what they allow (output commit, lag).
/// </summary>
internal sealed class LogStreamer : IDisposable
{
    private static readonly TimeSpan HeartbeatInterval = TimeSpan.FromMilliseconds(50);
    private const int ChunkBytes = 256 * 1024;
    /// <summary>A replica silent for this long is shown as not live (it still holds output back until the cluster
    /// drops it: see <see cref="ReleasedExit"/>).</summary>
    public const long LiveAckMs = 2000;

    private readonly string vm;
    private readonly ulong epoch;
    private readonly LogBuffer log;
    private readonly PeerNetwork network;
    private readonly Func<long> nowMs;
    private readonly Func<long> currentExit;
    private readonly Dictionary<string, ReplicaProgress> replicas = new(StringComparer.Ordinal);
    private readonly List<(long Exit, long AtMs)> exitTimes = [];
    private readonly Lock gate = new();
    private readonly CancellationTokenSource stopping = new();
    private readonly List<Task> senders = [];
    private readonly Dictionary<string, CancellationTokenSource> senderStops = new(StringComparer.Ordinal);

    public LogStreamer(string vm, ulong epoch, LogBuffer log, IReadOnlyList<(string NodeId, string Address)> replicaAddresses, PeerNetwork network, Func<long> nowMs, Func<long> currentExit)
    {
        this.vm = vm;
        this.epoch = epoch;
        this.log = log;
        this.network = network;
        this.nowMs = nowMs;
        this.currentExit = currentExit;
        // The placement's replicas when this copy became primary were in step with the log: they hold output back at once.
        foreach (var (id, address) in replicaAddresses) replicas[id] = new ReplicaProgress(id, address, 0, 0, ReplicaState.Waiting, nowMs(), Heard: false, InSync: true);
    }

    public LogBuffer Log => log;

    private Checkpoint? latest;
    private readonly Dictionary<string, CheckpointAssembly> assemblies = new(StringComparer.Ordinal);
    private long checkpointAskedMs = long.MinValue / 2;
    private long checkpointAdoptedMs = long.MinValue / 2;
    /// <summary>At most one checkpoint a second, however fast the log grows (each costs a replica a pause).</summary>
    private const long MinCheckpointIntervalMs = 1000;

    /// <summary>After this much log beyond the latest checkpoint, a replica is asked for a new one.</summary>
    public long CheckpointEveryBytes { get; init; } = 64L << 20;

    /// <summary>The checkpoint this copy starts with (a promoted replica's own).</summary>
    public Checkpoint? InitialCheckpoint
    {
        init => latest = value;
    }

    /// <summary>The latest checkpoint: the log is held from no later than its tail offset.</summary>
    public Checkpoint? Latest
    {
        get
        {
            lock (gate) return latest;
        }
    }

    /// <summary>Called with the replica and the checkpoint when a new one is adopted (logging).</summary>
    public Action<string, Checkpoint>? CheckpointAdopted { get; set; }

    private volatile bool silenced;

    /// <summary>Stops all sending (heartbeats too): a copy held for a switchover the cluster never carried out
    /// falls silent, so its replicas fail over the usual way instead of waiting on it forever.</summary>
    public void Silence() => silenced = true;

    /// <summary>Called after each acknowledgement (output may have become releasable).</summary>
    public Action? Acked { get; set; }

    public void Start()
    {
        lock (gate)
        {
            foreach (var replica in replicas.Values) StartSender(replica.NodeId, replica.Address);
            senders.Add(Task.Run(() => CheckpointLoopAsync(stopping.Token)));
        }
    }

    /// <summary>
    /// Every 100 ms: drop the log behind the latest checkpoint as far as every replica holds it, and when the log
    /// has grown by <see cref="CheckpointEveryBytes"/> since, ask the in-sync replica furthest in its replay for a new
    /// checkpoint (taken on that replica: the primary does not pause).
    /// </summary>
    private async Task CheckpointLoopAsync(CancellationToken cancel)
    {
        while (!cancel.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(100, cancel).ConfigureAwait(false);
                if (silenced) continue;
                ReplicaProgress? donor = null;
                lock (gate)
                {
                    long now = nowMs();
                    if (latest is { } current)
                    {
                        long held = replicas.Values.Where(r => r.State is not (ReplicaState.Diverged or ReplicaState.Failed))
                            .Select(r => (long)r.ReceivedBytes).DefaultIfEmpty(long.MaxValue).Min();
                        log.TruncateBefore(Math.Min(current.TailOffset, held));
                    }
                    if (log.ShippableLength - (latest?.TailOffset ?? 0) >= CheckpointEveryBytes && now - checkpointAskedMs > 10_000 && now - checkpointAdoptedMs >= MinCheckpointIntervalMs)
                    {
                        donor = replicas.Values.Where(r => r.InSync && r.Heard && r.State == ReplicaState.Replaying && now - r.LastAckMs <= LiveAckMs)
                            .OrderByDescending(r => r.ReplayedExit).FirstOrDefault();
                        if (donor is not null) checkpointAskedMs = now;
                    }
                }
                if (donor is not null)
                    await network.SendAsync(donor.Address, ChannelKind.VmLog, VmMessage.CheckpointRequest(vm, epoch).Encode(), compress: false, cancel).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>A piece of the checkpoint a replica was asked for (network thread); a whole, newer one is adopted and
    /// passed on to the other replicas (each keeps it, so whichever takes over can start new replicas from it).</summary>
    /// <exception cref="CheckpointFormatException">The assembled checkpoint does not verify.</exception>
    public void OnCheckpointData(string nodeId, VmMessage message)
    {
        Checkpoint? complete;
        List<(string NodeId, string Address)> others;
        // Copying pieces and hashing the whole checkpoint happen under their own lock, not the one every ack takes.
        // (Lock order: gate before assemblies, never the other way round.)
        lock (gate)
        {
            if (!replicas.ContainsKey(nodeId)) return;
        }
        lock (assemblies)
        {
            if (!assemblies.TryGetValue(nodeId, out var assembly)) assemblies[nodeId] = assembly = new CheckpointAssembly();
            complete = assembly.Offer(message.Exit, message.Offset, message.LogBytes, message.Data.Span);
        }
        if (complete is null) return;
        lock (gate)
        {
            if (latest is { } current && complete.TailOffset <= current.TailOffset) return;
            if (complete.TailOffset < log.Start || complete.TailOffset > log.Length) return;
            latest = complete;
            checkpointAskedMs = long.MinValue / 2;
            checkpointAdoptedMs = nowMs();
            others = [.. replicas.Values.Where(r => r.NodeId != nodeId).Select(r => (r.NodeId, r.Address))];
        }
        CheckpointAdopted?.Invoke(nodeId, complete);
        foreach (var (_, address) in others) _ = SendCheckpointAsync(address, complete, stopping.Token);
    }

    private async Task SendCheckpointAsync(string address, Checkpoint checkpoint, CancellationToken cancel)
    {
        try
        {
            await checkpoint.SendAsync(network, address, vm, epoch, cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private void StartSender(string nodeId, string address)
    {
        var stop = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        senderStops[nodeId] = stop;
        senders.Add(Task.Run(() => SendLoopAsync(nodeId, address, stop.Token)));
    }

    /// <summary>The placement's replicas changed at the same epoch (repair): stream to new ones from their position, stop the removed.</summary>
    public void SetReplicas(IReadOnlyList<(string NodeId, string Address)> wanted)
    {
        lock (gate)
        {
            foreach (string gone in replicas.Keys.Where(id => !wanted.Any(w => w.NodeId == id)).ToList())
            {
                replicas.Remove(gone);
                if (senderStops.Remove(gone, out var stop)) stop.Cancel();
                lock (assemblies) assemblies.Remove(gone);
            }
            foreach (var (id, address) in wanted)
            {
                if (replicas.ContainsKey(id)) continue;
                // A new replica (repair) catches up first; it holds output back once it has all the log there is.
                replicas[id] = new ReplicaProgress(id, address, 0, 0, ReplicaState.Waiting, nowMs(), Heard: false, InSync: false);
                StartSender(id, address);
            }
        }
    }

    /// <summary>The log now covers this exit (after a flush): remembered for lag in milliseconds, as far back as
    /// the slowest replica (older marks can no longer answer a lag question).</summary>
    public void Marked(long exit)
    {
        lock (gate)
        {
            exitTimes.Add((exit, nowMs()));
            if (exitTimes.Count < 4096) return;
            long slowest = replicas.Count == 0 ? exit : replicas.Values.Min(r => r.ReplayedExit);
            int stale = exitTimes.FindIndex(t => t.Exit > slowest);
            if (stale > 0) exitTimes.RemoveRange(0, stale);
        }
    }

    private async Task SendLoopAsync(string replicaId, string address, CancellationToken cancel)
    {
        long sent = 0;
        long lastHeartbeat = 0;
        long lastProgressMs = nowMs();
        bool positioned = false;
        while (!cancel.IsCancellationRequested)
        {
            try
            {
                await log.WaitBeyondAsync(sent, HeartbeatInterval, cancel).ConfigureAwait(false);
                if (silenced)
                {
                    await Task.Delay(HeartbeatInterval, cancel).ConfigureAwait(false);
                    continue;
                }
                ReplicaProgress? progress;
                lock (gate) progress = replicas.GetValueOrDefault(replicaId);
                if (progress is null) return;
                long shippable = log.ShippableLength;
                // Start where the replica is (after a failover it may already hold most of the log); resend from
                // its position when it reports less than was sent for a while (a connection broke).
                if (!positioned && progress.Heard)
                {
                    sent = Math.Min((long)progress.ReceivedBytes, shippable);
                    positioned = true;
                }
                if (positioned && (long)progress.ReceivedBytes < sent && nowMs() - lastProgressMs > 1000)
                {
                    sent = (long)progress.ReceivedBytes;
                    lastProgressMs = nowMs();
                }
                if ((long)progress.ReceivedBytes >= sent) lastProgressMs = nowMs();
                // The replica holds more than was sent to it (it got it from an earlier primary): skip ahead.
                if (positioned && (long)progress.ReceivedBytes > sent) sent = Math.Min((long)progress.ReceivedBytes, shippable);
                // It needs log from before what is held (a new replica after truncation): the checkpoint first, then
                // the log from its tail offset.
                if (positioned && sent < log.Start)
                {
                    if (Latest is not { } checkpoint || checkpoint.TailOffset < log.Start)
                    {
                        await Task.Delay(50, cancel).ConfigureAwait(false);
                        continue;
                    }
                    await SendCheckpointAsync(address, checkpoint, cancel).ConfigureAwait(false);
                    sent = checkpoint.TailOffset;
                    lastProgressMs = nowMs();
                    continue;
                }
                byte[] data = positioned && sent < shippable ? log.Read(sent, (int)Math.Min(ChunkBytes, shippable - sent)) : [];
                if (data.Length > 0 && await network.SendAsync(address, ChannelKind.VmLog, VmMessage.LogData(vm, epoch, (ulong)sent, data).Encode(), compress: false, cancel).ConfigureAwait(false))
                    sent += data.Length;
                if (nowMs() - lastHeartbeat >= HeartbeatInterval.TotalMilliseconds || data.Length == 0)
                {
                    if (nowMs() - lastHeartbeat >= HeartbeatInterval.TotalMilliseconds)
                    {
                        lastHeartbeat = nowMs();
                        await network.SendAsync(address, ChannelKind.VmLog, VmMessage.Heartbeat(vm, epoch, currentExit(), (ulong)shippable, log.Completed && !log.Sealed, (ulong)log.Start).Encode(), compress: false, cancel).ConfigureAwait(false);
                    }
                    if (data.Length == 0) await Task.Delay(positioned ? 5 : 20, cancel).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>A replica's acknowledgement (network thread); true when it newly reports a divergence.</summary>
    public bool OnAck(string nodeId, VmMessage ack)
    {
        bool diverged;
        lock (gate)
        {
            if (!replicas.TryGetValue(nodeId, out var known)) return false;
            var state = (ReplicaState)ack.State;
            // Less than it had: it lost its copy (its daemon restarted) and catches up again before it counts.
            bool inSync = known.Heard && ack.Offset < known.ReceivedBytes ? false : known.InSync || (long)ack.Offset >= log.ShippableLength;
            replicas[nodeId] = known with { ReceivedBytes = ack.Offset, ReplayedExit = ack.Exit, State = state, LastAckMs = nowMs(), Heard = true, InSync = inSync };
            diverged = state == ReplicaState.Diverged && known.State != ReplicaState.Diverged;
        }
        Acked?.Invoke();
        return diverged;
    }

    /// <summary>In-sync replicas silent for at least this long (they hold output back): the primary asks the
    /// leader to drop them from the placement.</summary>
    public IReadOnlyList<string> SilentReplicas(long silentMs)
    {
        long now = nowMs();
        lock (gate) return [.. replicas.Values.Where(r => r.InSync && now - r.LastAckMs >= silentMs).Select(r => r.NodeId)];
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
            // The first mark past the replayed exit: when the primary got beyond where the replica is.
            int low = 0, high = exitTimes.Count - 1, found = -1;
            while (low <= high)
            {
                int middle = (low + high) >>> 1;
                if (exitTimes[middle].Exit > replayedExit)
                {
                    found = middle;
                    high = middle - 1;
                }
                else
                {
                    low = middle + 1;
                }
            }
            return found < 0 ? 0 : Math.Max(0, nowMs() - exitTimes[found].AtMs);
        }
    }

    /// <summary>
    /// Output commit: the highest exit whose log every in-sync replica of the placement has received (all, without
    /// replicas). A silent replica keeps holding output back until the cluster drops it from the placement (see
    /// <see cref="SilentReplicas"/>): a primary cut off from its replicas must not go on alone, since the other side
    /// may already have a new primary.
    /// </summary>
    public long ReleasedExit()
    {
        long exit = long.MaxValue;
        lock (gate)
        {
            foreach (var replica in replicas.Values)
            {
                if (!replica.InSync || replica.State is ReplicaState.Diverged or ReplicaState.Failed) continue;
                exit = Math.Min(exit, log.ExitCoveredBy((long)replica.ReceivedBytes));
            }
        }
        return exit;
    }

    public void Dispose()
    {
        stopping.Cancel();
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
