namespace P2PReplay.Cluster.Vms;

/// <summary>A VM as this node knows it: its placement, and the local copy's progress if this node runs one.</summary>
internal sealed record VmView(
    Placement Placement,
    string Role,
    string State,
    string? Error,
    long Exits,
    long LogBytes,
    IReadOnlyList<ReplicaView> Replicas,
    long LogStart = 0,
    long CheckpointOffset = -1);

/// <summary>One replica's position as its primary sees it (or as the replica itself sees it).</summary>
internal sealed record ReplicaView(string NodeId, string State, long ReplayedExits, long ReceivedBytes, long LagExits, long LagMs, bool Live);

/// <summary>A replica that has not heard from its primary for too long (the failover trigger).</summary>
internal sealed record LostPrimary(string Vm, ulong Epoch, string Primary, long ReceivedBytes, long SilentMs, long ReplayedExits = 0);

/// <summary>
/// Runs this node's share of the placement table: a primary for each VM placed here as primary, a replica for each
/// placed here as replica; promotes or retargets replicas when a failover moves the primary; stops copies whose
/// placement went away. Routes VM log stream messages to them.
/// </summary>
internal sealed class VmManager(string selfId, Transport.PeerNetwork network, Microsoft.Extensions.Logging.ILogger logger, Func<long> nowMs, long processStartUnixMs) : IDisposable
{
    private readonly HashSet<string> lostCopies = new(StringComparer.Ordinal);
    private readonly HashSet<string> reportedDivergent = new(StringComparer.Ordinal);

    /// <summary>Test fault injection, from P2PREPLAY_FAILPOINTS (comma-separated names): "replica-corrupt-random" makes
    /// the first replica of a new placement see wrong random bytes (a faulty machine), on the node that holds it.</summary>
    public bool FailpointCorruptReplicaRandom { get; init; }

    /// <summary>Test fault injection ("replica-corrupt-log"): the first replica this daemon process runs flips a bit of
    /// the log data it receives after the first message (a corrupt transfer), once.</summary>
    public bool FailpointCorruptReplicaLog { get; init; }

    /// <summary>A primary asks a replica for a checkpoint after this much new log.</summary>
    public long CheckpointEveryBytes { get; init; } = 64L << 20;

    /// <summary>How VM copies talk to front ends (this node's own front end directly).</summary>
    public VmNetLink? NetLink { get; init; }

    /// <summary>Where copies get their VM's image (by hash) before they start.</summary>
    public Images.ImageService? Images { get; init; }
    /// <summary>Heartbeats come every 50 ms: four missed in a row mean the primary is gone.</summary>
    public const long PrimarySilenceMs = 200;

    private readonly Lock gate = new();
    private readonly Dictionary<string, (Placement Placement, PrimaryVm Vm)> primaries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ReplicaVm> replicas = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> lastReportMs = new(StringComparer.Ordinal);
    /// <summary>A report may be lost (no leader at that moment): repeat it this often while the silence lasts.</summary>
    private const long ReportEveryMs = 100;

    /// <summary>Brings the local copies in line with the placement table (cluster loop thread).</summary>
    public void Reconcile(IReadOnlyCollection<Placement> placements, Func<string, string?> addressOf)
    {
        var wanted = placements.ToDictionary(p => p.Vm, StringComparer.Ordinal);
        List<IDisposable> stop = [];
        List<(string NodeId, string Address)> AddressesOf(IEnumerable<string> ids) =>
            ids.Select(id => (id, addressOf(id))).Where(r => r.Item2 is not null).Select(r => (r.id, r.Item2!)).ToList();
        lock (gate)
        {
            foreach (var (name, (placement, vm)) in primaries.ToList())
            {
                if (wanted.TryGetValue(name, out var now) && now.Epoch == placement.Epoch && now.Primary == selfId)
                {
                    if (!now.Replicas.SequenceEqual(placement.Replicas))
                    {
                        primaries[name] = (now, vm);
                        vm.Streamer.SetReplicas(AddressesOf(now.Replicas));
                    }
                    continue;
                }
                // A newer epoch made someone else primary (or the VM is gone): this copy must never release output again.
                primaries.Remove(name);
                stop.Add(vm);
            }
            foreach (var (name, replica) in replicas.ToList())
            {
                if (wanted.TryGetValue(name, out var now))
                {
                    if (now.Epoch == replica.Placement.Epoch)
                    {
                        if (replica.Promoted)
                        {
                            replica.UpdateReplicas(now, AddressesOf(now.Replicas));
                            continue;
                        }
                        if (now.Replicas.Contains(selfId)) continue;
                        replicas.Remove(name);
                        stop.Add(replica);
                        continue;
                    }
                    lastReportMs.Remove(name);
                    if (now.Primary == selfId)
                    {
                        replica.Promote(now, AddressesOf(now.Replicas));
                        continue;
                    }
                    if (now.Replicas.Contains(selfId) && !replica.Promoted && addressOf(now.Primary) is { } address)
                    {
                        replica.Retarget(now, address);
                        continue;
                    }
                }
                replicas.Remove(name);
                stop.Add(replica);
            }
            foreach (var placement in placements)
            {
                if (placement.Spec is null || replicas.ContainsKey(placement.Vm)) continue;
                if (placement.Primary == selfId && !primaries.ContainsKey(placement.Vm))
                {
                    // Only a VM created while this process runs starts from scratch here. A restarted node named
                    // primary lost its copy with its process: it runs nothing, the replicas hear silence and fail over.
                    if (placement.Epoch != 1 || placement.CreatedUnixMs < processStartUnixMs)
                    {
                        if (lostCopies.Add($"{placement.Vm}@{placement.Epoch}")) VmLog.LostCopy(logger, placement.Vm, placement.Epoch);
                        continue;
                    }
                    var addresses = AddressesOf(placement.Replicas);
                    var vm = new PrimaryVm(placement, placement.Spec, addresses, network, logger, nowMs, NetLink, CheckpointEveryBytes) { Image = Cluster.Images.ImageService.AcquireFor(Images, placement, selfId, addressOf) };
                    primaries[placement.Vm] = (placement, vm);
                    VmLog.PrimaryStarting(logger, placement.Vm, placement.Epoch, addresses.Count);
                    vm.Start();
                }
                else if (placement.Replicas.Contains(selfId) && addressOf(placement.Primary) is { } primaryAddress)
                {
                    var vm = new ReplicaVm(placement, primaryAddress, network, logger, nowMs, NetLink) { CorruptRandomInput = FailpointCorruptReplicaRandom && placement.Replicas[0] == selfId, CorruptLogOnce = FailpointCorruptReplicaLog, CheckpointEveryBytes = CheckpointEveryBytes, Image = Cluster.Images.ImageService.AcquireFor(Images, placement, selfId, addressOf) };
                    replicas[placement.Vm] = vm;
                    VmLog.ReplicaStarting(logger, placement.Vm, placement.Primary, placement.Epoch);
                    vm.Start();
                }
            }
        }
        // Stopping joins VM threads: not under the lock, and not for long (RequestPause kicks the vCPU).
        foreach (var vm in stop) vm.Dispose();
        lock (gate) Images?.KeepFetching(primaries.Values.Select(p => p.Placement).Concat(replicas.Values.Select(r => r.Placement)).Select(p => p.Spec?.ImageHash).OfType<string>().ToHashSet(StringComparer.Ordinal));
    }

    /// <summary>Replicas whose primary fell silent, each reported once per epoch (cluster loop thread).</summary>
    public IReadOnlyList<LostPrimary> LostPrimaries()
    {
        long now = nowMs();
        var lost = new List<LostPrimary>();
        lock (gate)
        {
            foreach (var (name, replica) in replicas)
            {
                var placement = replica.Placement;
                if (replica.Promoted || replica.State is ReplicaState.Finished or ReplicaState.Diverged or ReplicaState.Failed) continue;
                long silent = now - replica.LastHeardMs;
                if (silent < PrimarySilenceMs) continue;
                bool first = !lastReportMs.TryGetValue(name, out long last);
                if (!first && now - last < ReportEveryMs) continue;
                lastReportMs[name] = now;
                if (first) VmLog.PrimarySilent(logger, name, placement.Primary, silent, placement.Epoch);
                lost.Add(new LostPrimary(name, placement.Epoch, placement.Primary, replica.ReceivedBytes, silent, replica.ReplayedExits));
            }
        }
        return lost;
    }

    /// <summary>An in-sync replica silent this long (acks come every 50 ms) is reported to the leader to be dropped.</summary>
    public const long ReplicaSilenceMs = 1000;

    /// <summary>In-sync replicas of this node's live copies that fell silent, each reported every 500 ms while it
    /// lasts (cluster loop thread). The leader drops them from the placement, which releases the held output.</summary>
    public IReadOnlyList<(string Vm, ulong Epoch, string Node)> SilentReplicas()
    {
        long now = nowMs();
        var found = new List<(string, ulong, string)>();
        lock (gate)
        {
            var streamers = primaries.Values.Select(p => (p.Placement, (LogStreamer?)p.Vm.Streamer))
                .Concat(replicas.Values.Where(r => r.LiveStreamer is not null).Select(r => (r.Placement, r.LiveStreamer)));
            // Only replicas lost right now are remembered: one that speaks again (or is gone) is forgotten.
            var stillLost = new Dictionary<(string, ulong, string), long>();
            foreach (var (placement, streamer) in streamers)
            {
                // A replica that failed (e.g. it could not read the log it got) is dropped too: repair gives a fresh copy.
                var failed = streamer!.Replicas.Where(r => r.State == ReplicaState.Failed).Select(r => r.NodeId).ToHashSet(StringComparer.Ordinal);
                foreach (string node in streamer.SilentReplicas(ReplicaSilenceMs).Union(failed))
                {
                    var key = (placement.Vm, placement.Epoch, node);
                    bool known = lostReplicaReports.TryGetValue(key, out long last);
                    if (!known)
                    {
                        if (failed.Contains(node)) VmLog.ReplicaFailedDropped(logger, placement.Vm, node, placement.Epoch);
                        else VmLog.ReplicaSilent(logger, placement.Vm, node, ReplicaSilenceMs, placement.Epoch);
                    }
                    if (known && now - last < 500)
                    {
                        stillLost[key] = last;
                        continue;
                    }
                    stillLost[key] = now;
                    found.Add(key);
                }
            }
            lostReplicaReports = stillLost;
        }
        return found;
    }

    /// <summary>When each lost replica was last reported to the leader (repeated every 500 ms while it lasts).</summary>
    private Dictionary<(string Vm, ulong Epoch, string Node), long> lostReplicaReports = [];

    /// <summary>Replicas this node's primaries heard report a divergence, each reported once (cluster loop thread).</summary>
    public IReadOnlyList<(string Vm, ulong Epoch, string Node)> DivergedReplicas()
    {
        var found = new List<(string, ulong, string)>();
        lock (gate)
        {
            var streamers = primaries.Values.Select(p => (p.Placement, p.Vm.Streamer))
                .Concat(replicas.Values.Where(r => r.Streamer is not null).Select(r => (r.Placement, r.Streamer!)));
            foreach (var (placement, streamer) in streamers)
            {
                foreach (var replica in streamer.Replicas)
                {
                    if (replica.State == ReplicaState.Diverged && reportedDivergent.Add($"{placement.Vm}@{placement.Epoch}@{replica.NodeId}"))
                        found.Add((placement.Vm, placement.Epoch, replica.NodeId));
                }
            }
        }
        return found;
    }

    /// <summary>A VmLog frame from an authenticated peer (network thread).</summary>
    public void OnMessage(string fromNodeId, ReadOnlyMemory<byte> payload)
    {
        VmMessage message;
        try
        {
            message = VmMessage.Decode(payload);
        }
        catch (VmWireFormatException e)
        {
            VmLog.MalformedMessage(logger, fromNodeId, e.Message);
            return;
        }
        lock (gate)
        {
            if (message.Type == VmMessageType.CheckpointData)
            {
                // To a live copy from its replica (the checkpoint it asked for), or to a replica from its primary.
                LogStreamer? live = primaries.TryGetValue(message.Vm, out var owner) && owner.Placement.Epoch == message.Epoch ? owner.Vm.Streamer
                    : replicas.TryGetValue(message.Vm, out var promotedOwner) && promotedOwner.Promoted && promotedOwner.Placement.Epoch == message.Epoch ? promotedOwner.Streamer : null;
                if (live is not null)
                {
                    try
                    {
                        live.OnCheckpointData(fromNodeId, message);
                    }
                    catch (CheckpointFormatException e)
                    {
                        VmLog.BadCheckpoint(logger, message.Vm, $"from {fromNodeId}: {e.Message}");
                    }
                    return;
                }
            }
            if (message.Type == VmMessageType.Ack)
            {
                if (primaries.TryGetValue(message.Vm, out var primary) && primary.Placement.Epoch == message.Epoch) primary.Vm.OnAck(fromNodeId, message);
                else if (replicas.TryGetValue(message.Vm, out var promoted) && promoted.Promoted && promoted.Placement.Epoch == message.Epoch) promoted.OnAck(fromNodeId, message);
                return;
            }
            // Only the placement's primary at the current epoch may feed a replica: an old primary is fenced off.
            if (replicas.TryGetValue(message.Vm, out var replica) && !replica.Promoted && replica.Placement.Primary == fromNodeId && replica.Placement.Epoch == message.Epoch)
                replica.OnMessage(message);
        }
    }

    /// <summary>A front end's VmNet message for a VM this node is primary of (network thread); others are dropped.</summary>
    public void OnFrontEndMessage(string frontEndAddress, NetMessage message)
    {
        VmConnections? target;
        lock (gate)
        {
            // A replica takes Opens too: the front end may learn of a failover before this node does, and the
            // replica keeps them until it goes live (at that epoch) rather than make the front end ask again later.
            target = primaries.TryGetValue(message.Vm, out var primary) ? primary.Vm.Connections
                : replicas.TryGetValue(message.Vm, out var replica) && (replica.Promoted || message.Type == NetMessageType.Open) ? replica.Connections : null;
        }
        target?.OnFrontEndMessage(frontEndAddress, message);
    }

    /// <summary>
    /// Planned switchover, on the primary's node: holds the live copy at a clean point, seals its log and waits until
    /// the target replica (the given one, or the live replica holding the most log) has all of it. Returns the target
    /// and the sealed length; the copy stays held (the leader now moves the primary; see <see cref="SilenceHeld"/>).
    /// </summary>
    public async Task<(string Target, long SealedLength)> PrepareSwitchoverAsync(string name, ulong epoch, string? target, TimeProvider time, CancellationToken cancel)
    {
        ILiveCopy? copy;
        lock (gate)
        {
            copy = primaries.TryGetValue(name, out var primary) && primary.Placement.Epoch == epoch ? primary.Vm
                : replicas.TryGetValue(name, out var replica) && replica.Placement.Epoch == epoch && replica.LiveStreamer is not null ? replica : null;
        }
        if (copy?.LiveStreamer is not { } streamer) throw new ClusterException($"{name} is not running live on {selfId} at epoch {epoch} (still taking over?)");
        long now = nowMs();
        var live = streamer.Replicas.Where(r => now - r.LastAckMs <= LogStreamer.LiveAckMs && r.Heard && r.State is not (ReplicaState.Diverged or ReplicaState.Failed)).ToList();
        string chosen = target ?? live.OrderByDescending(r => r.ReceivedBytes).ThenBy(r => r.NodeId, StringComparer.Ordinal).FirstOrDefault()?.NodeId
            ?? throw new ClusterException($"{name} has no live replica to hand over to");
        if (!live.Any(r => r.NodeId == chosen)) throw new ClusterException($"{chosen} is not a live replica of {name} right now");
        long started = nowMs();
        long sealedLength = await Switchover.HoldAsync(copy, TimeSpan.FromSeconds(2), cancel).ConfigureAwait(false);
        if (!await Switchover.WaitForTargetAsync(streamer, chosen, sealedLength, TimeSpan.FromSeconds(3), time, cancel).ConfigureAwait(false))
        {
            Switchover.Release(copy);
            throw new ClusterException($"{chosen} did not receive {name}'s log in time; the switchover was called off and {selfId} stays primary");
        }
        VmLog.SwitchoverReady(logger, name, epoch, chosen, sealedLength, nowMs() - started);
        return (chosen, sealedLength);
    }

    /// <summary>A copy held for a switchover the cluster did not carry out in time falls silent (its replicas fail over).</summary>
    public void SilenceHeld(string name, ulong epoch)
    {
        lock (gate)
        {
            ILiveCopy? copy = primaries.TryGetValue(name, out var primary) && primary.Placement.Epoch == epoch ? primary.Vm
                : replicas.TryGetValue(name, out var replica) && replica.Placement.Epoch == epoch ? replica : null;
            if (copy is null || !copy.Hold.Held) return;
            copy.LiveStreamer?.Silence();
            VmLog.SwitchoverAbandoned(logger, name, epoch);
        }
    }

    public VmView View(Placement placement)
    {
        lock (gate)
        {
            long now = nowMs();
            string? fetching = placement.Spec?.ImageHash is { } image ? Images?.Status(image) : null;
            if (primaries.TryGetValue(placement.Vm, out var primary) && primary.Placement.Epoch == placement.Epoch)
            {
                var vm = primary.Vm;
                return new VmView(placement, "primary", fetching ?? vm.State, vm.Error, vm.Exits, vm.LogBytes, ReplicaViews(vm.Streamer, vm.Exits, now), vm.Log.Start, vm.Streamer.Latest?.TailOffset ?? -1);
            }
            if (replicas.TryGetValue(placement.Vm, out var replica) && replica.Placement.Epoch == placement.Epoch)
            {
                string state = fetching ?? replica.State.ToString().ToLowerInvariant() + (replica.ExitStatus is { } exit ? $" ({exit})" : "");
                if (replica.Streamer is { } streamer && replica.WentLiveAtExit is not null)
                    return new VmView(placement, "primary", replica.State == ReplicaState.Replaying ? $"running, live since exit {replica.WentLiveAtExit}" : state, replica.Error, replica.ReplayedExits, streamer.Log.Length, ReplicaViews(streamer, replica.ReplayedExits, now), streamer.Log.Start, streamer.Latest?.TailOffset ?? -1);
                if (replica.Promoted)
                    return new VmView(placement, "primary", "taking over: replaying what it received", replica.Error, replica.ReplayedExits, replica.ReceivedBytes, [], replica.LogStart, replica.LatestCheckpoint?.TailOffset ?? -1);
                var self = new ReplicaView(selfId, state, replica.ReplayedExits, replica.ReceivedBytes, Math.Max(0, replica.PrimaryExits - replica.ReplayedExits), -1, true);
                return new VmView(placement, "replica", state, replica.Error, replica.PrimaryExits, replica.PrimaryLogBytes, [self], replica.LogStart, replica.LatestCheckpoint?.TailOffset ?? -1);
            }
            return new VmView(placement, "none", "runs elsewhere", null, 0, 0, []);
        }
    }

    private static List<ReplicaView> ReplicaViews(LogStreamer streamer, long exits, long now) =>
        streamer.Replicas.Select(r => new ReplicaView(r.NodeId, r.State.ToString().ToLowerInvariant(), r.ReplayedExit, (long)r.ReceivedBytes,
            Math.Max(0, exits - r.ReplayedExit), streamer.LagMs(r.ReplayedExit), now - r.LastAckMs <= LogStreamer.LiveAckMs)).ToList();

    /// <summary>The guest's output as this node may show it: released output on the primary, replayed output on a replica.</summary>
    public byte[]? Output(string vm)
    {
        lock (gate)
        {
            if (primaries.TryGetValue(vm, out var primary)) return primary.Vm.ReleasedOutput();
            if (replicas.TryGetValue(vm, out var replica)) return replica.ReleasedOutput();
            return null;
        }
    }

    public void Dispose()
    {
        List<IDisposable> all;
        lock (gate)
        {
            all = [.. primaries.Values.Select(p => (IDisposable)p.Vm), .. replicas.Values];
            primaries.Clear();
            replicas.Clear();
        }
        foreach (var vm in all) vm.Dispose();
    }
}
