using System.Text.Json;
using System.Text.Json.Serialization;
using P2PReplay.Cluster.Vms;
using P2PReplay.Consensus;
using P2PReplay.Discovery.Gossip;
using P2PReplay.Transport;

namespace P2PReplay.Cluster;

/// <summary>A request to create or stop a VM, sent to the Raft leader (which alone places VMs).</summary>
/// <remarks>Ops: create, stop (to the leader); failover (to the VM's primary: it holds the guest and seals the log);
/// switchover-ready (primary to leader: move the primary); primary-lost, replica-diverged (reports to the leader).
/// <see cref="From"/> is the node whose client waits (errors go back to it).</remarks>
internal sealed record VmRequest(string Op, string Name, int Replicas = 0, VmSpec? Spec = null, ulong Epoch = 0, long ReceivedBytes = 0, string? Node = null, long ReplayedExits = 0, string? From = null);

/// <summary>The leader's refusal of a VM request (success shows as the placement being applied).</summary>
internal sealed record VmRequestFailed(string Name, string Error);

/// <summary>Node-to-node control messages (ChannelKind.Control).</summary>
internal sealed record ControlEnvelope(VmRequest? Request = null, VmRequestFailed? Failed = null);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ControlEnvelope))]
internal sealed partial class ControlEnvelopeJsonContext : JsonSerializerContext;

internal sealed partial class ClusterNode
{
    private static readonly TimeSpan VmRequestTimeout = TimeSpan.FromSeconds(10);
    /// <summary>Requests of this node's clients, by VM: done when the placement shows it (a failover: a newer epoch than <c>Epoch</c>).</summary>
    private readonly Dictionary<string, (string Op, TaskCompletionSource<Placement?> Done, ulong Epoch)> pendingVmRequests = new(StringComparer.Ordinal);
    /// <summary>A held copy whose switchover the cluster has not carried out after this long falls silent.</summary>
    private static readonly TimeSpan SwitchoverCommitTimeout = TimeSpan.FromSeconds(5);
    private VmManager? vms;

    /// <summary>Failover reports gathered by the leader: per VM, the epoch whose primary fell silent and what each replica holds.</summary>
    private readonly Dictionary<string, (ulong Epoch, Dictionary<string, (long Bytes, long Replayed)> Received, long FirstMs)> failoverReports = new(StringComparer.Ordinal);
    /// <summary>Without every replica's report the leader waits at least this long for the others.</summary>
    private const long FailoverGatherMs = 100;
    /// <summary>...and at the latest after this long (a replica may be gone too).</summary>
    private const long FailoverMaxWaitMs = 1000;

    public async Task<Placement> CreateVmAsync(string name, int replicaCount, VmSpec spec, CancellationToken cancel) =>
        await SubmitVmRequestAsync(new VmRequest("create", name, replicaCount, spec), cancel).ConfigureAwait(false)
            ?? throw new ClusterException($"{name} was removed again before this node saw it");

    public async Task StopVmAsync(string name, CancellationToken cancel) => await SubmitVmRequestAsync(new VmRequest("stop", name), cancel).ConfigureAwait(false);

    /// <summary>Planned switchover: the primary moves to the target replica (or the best one) at a higher epoch.</summary>
    public async Task<Placement> FailoverVmAsync(string name, string? target, CancellationToken cancel) =>
        await SubmitVmRequestAsync(new VmRequest("failover", name, Node: target, From: identity.NodeId), cancel).ConfigureAwait(false)
            ?? throw new ClusterException($"{name} was removed during the switchover");

    public IReadOnlyList<VmView> ListVms() => Read(() => state.Placements.Select(p => vms!.View(p)).ToList());

    public VmView? ShowVm(string name) => Read(() => state.Find(name) is { } placement ? vms!.View(placement) : null);

    public byte[]? VmOutput(string name) => vms?.Output(name);

    /// <summary>Reads cluster state on the loop (it is not thread-safe).</summary>
    private T Read<T>(Func<T> read)
    {
        if (vms is null) throw new ClusterException("this node is not in a cluster yet");
        return Call(() => Task.FromResult(read())).GetAwaiter().GetResult();
    }

    private async Task<Placement?> SubmitVmRequestAsync(VmRequest request, CancellationToken cancel)
    {
        var done = new TaskCompletionSource<Placement?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await Call(() =>
        {
            if (raft is null || gossip is null) throw new ClusterException("this node is not in a cluster yet");
            if (pendingVmRequests.ContainsKey(request.Name)) throw new ClusterException($"a request for {request.Name} is already in progress");
            if (request.Op == "create" && state.Find(request.Name) is not null) throw new ClusterException($"a VM named {request.Name} exists already");
            if (request.Op is "stop" or "failover" && state.Find(request.Name) is null) throw new ClusterException($"no VM named {request.Name}", 404);
            ulong epoch = state.Find(request.Name)?.Epoch ?? 0;
            if (request.Op == "failover" && state.Find(request.Name) is { } placement)
            {
                if (request.Node is { } target && !placement.Replicas.Contains(target))
                    throw new ClusterException($"{target} is not a replica of {request.Name} (its replicas: {(placement.Replicas.Count == 0 ? "none" : string.Join(", ", placement.Replicas))})", 400);
                if (placement.Replicas.Count == 0) throw new ClusterException($"{request.Name} has no replica to hand over to", 409);
                request = request with { Epoch = epoch };
            }
            pendingVmRequests[request.Name] = (request.Op, done, epoch);
            HandleVmRequest(request, identity.NodeId);
            return Task.FromResult(true);
        }).ConfigureAwait(false);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(VmRequestTimeout);
        try
        {
            return await done.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Post(() => pendingVmRequests.Remove(request.Name));
            throw new ClusterException($"the cluster did not apply the {request.Op} of {request.Name} within {VmRequestTimeout.TotalSeconds} s (no leader or no quorum?)", 503);
        }
    }

    /// <summary>On the loop: the leader places or removes; any other node forwards to the leader.</summary>
    private void HandleVmRequest(VmRequest request, string fromNodeId)
    {
        if (request.Op == "failover")
        {
            RouteSwitchover(request, fromNodeId);
            return;
        }
        if (raft!.State != RaftState.Leader)
        {
            string? leader = raft.LeaderId == 0 ? null : AddressOf(raft.LeaderId);
            if (leader is null)
            {
                FailVmRequest(fromNodeId, request.Name, "no Raft leader right now; try again in a moment");
                return;
            }
            outbox!.Send(leader, ChannelKind.Control, JsonSerializer.SerializeToUtf8Bytes(new ControlEnvelope(Request: request), ControlEnvelopeJsonContext.Default.ControlEnvelope));
            return;
        }
        ClusterCommand command;
        switch (request.Op)
        {
            case "create" when request.Spec is not null:
                if (state.Find(request.Name) is not null)
                {
                    FailVmRequest(fromNodeId, request.Name, $"a VM named {request.Name} exists already");
                    return;
                }
                var chosen = ChooseNodes(request.Replicas + 1);
                if (chosen.Count < request.Replicas + 1)
                {
                    FailVmRequest(fromNodeId, request.Name, $"{request.Replicas} replicas need {request.Replicas + 1} live nodes; the cluster has {chosen.Count}");
                    return;
                }
                command = new PutPlacement(new Placement(request.Name, 1, chosen[0], chosen[1..], request.Spec.ImageHash ?? request.Spec.ProgramSha256, request.Spec, request.Replicas, time.GetUtcNow().ToUnixTimeMilliseconds()));
                break;
            case "stop":
                command = new RemovePlacement(request.Name);
                break;
            case "switchover-ready":
                // Only the primary at that epoch can hand over, and only to one of its replicas; it then becomes a
                // replica of the new primary (which holds its whole log, so nothing is lost or foreign anywhere).
                if (state.Find(request.Name) is not { } current || current.Epoch != request.Epoch || current.Primary != fromNodeId || request.Node is not { } to || !current.Replicas.Contains(to))
                {
                    FailVmRequest(request.From ?? fromNodeId, request.Name, $"the placement of {request.Name} changed during the switchover");
                    return;
                }
                var handedOver = current with { Epoch = current.Epoch + 1, Primary = to, Replicas = [.. current.Replicas.Where(r => r != to), current.Primary] };
                command = new PutPlacement(handedOver);
                ClusterLog.Switchover(logger, request.Name, current.Primary, to, handedOver.Epoch, request.ReceivedBytes);
                break;
            case "primary-lost":
                NoteLostPrimary(request, fromNodeId);
                return;
            case "replica-lost":
                // Only the VM's primary at that epoch can say so (it holds output back for that replica). Dropping the
                // replica needs a quorum: a primary cut off from the cluster cannot get it and stays held.
                if (state.Find(request.Name) is not { } holding || holding.Epoch != request.Epoch || holding.Primary != fromNodeId || request.Node is not { } lost || !holding.Replicas.Contains(lost))
                    return;
                command = new SetReplicas(request.Name, request.Epoch, [.. holding.Replicas.Where(r => r != lost)]);
                ClusterLog.ReplicaDropped(logger, request.Name, lost, request.Epoch);
                break;
            case "replica-diverged":
                // Only the VM's primary at that epoch can say so (it got the replica's acknowledgement).
                if (state.Find(request.Name) is { } diverging && diverging.Epoch == request.Epoch && diverging.Primary == fromNodeId && request.Node is { } node)
                {
                    divergedReplicas.Add((request.Name, node));
                    ClusterLog.ReplicaDiverged(logger, request.Name, node);
                }
                return;
            default:
                FailVmRequest(fromNodeId, request.Name, $"unknown VM request '{request.Op}'");
                return;
        }
        if (!raft.Propose(ClusterState.Encode(command)).Accepted) FailVmRequest(fromNodeId, request.Name, "the leader could not propose it (leadership changing)");
    }

    /// <summary>
    /// A switchover request (on the loop): the VM's primary holds its guest, seals the log and, once the target has
    /// all of it, asks the leader to move the primary; any other node passes the request on to the primary.
    /// </summary>
    private void RouteSwitchover(VmRequest request, string fromNodeId)
    {
        string requester = request.From ?? fromNodeId;
        if (state.Find(request.Name) is not { } placement)
        {
            FailVmRequest(requester, request.Name, $"no VM named {request.Name}");
            return;
        }
        if (request.Epoch != 0 && request.Epoch != placement.Epoch)
        {
            FailVmRequest(requester, request.Name, $"{request.Name} moved to epoch {placement.Epoch} meanwhile");
            return;
        }
        if (placement.Primary != identity.NodeId)
        {
            if (RaftIdOf(placement.Primary) is ulong id && AddressOf(id) is { } address)
                outbox!.Send(address, ChannelKind.Control, JsonSerializer.SerializeToUtf8Bytes(new ControlEnvelope(Request: request with { From = requester }), ControlEnvelopeJsonContext.Default.ControlEnvelope));
            else
                FailVmRequest(requester, request.Name, $"the primary of {request.Name} ({placement.Primary}) cannot be reached");
            return;
        }
        var manager = vms!;
        ulong epoch = placement.Epoch;
        _ = Task.Run(async () =>
        {
            try
            {
                var (target, sealedLength) = await manager.PrepareSwitchoverAsync(request.Name, epoch, request.Node, time, CancellationToken.None).ConfigureAwait(false);
                Post(() => HandleVmRequest(new VmRequest("switchover-ready", request.Name, Epoch: epoch, ReceivedBytes: sealedLength, Node: target, From: requester), identity.NodeId));
                // Sealed and held: if the cluster does not move the primary, this copy must not run on (the leader
                // may still commit the move later); it falls silent and its replicas fail over as usual.
                await Task.Delay(SwitchoverCommitTimeout, time).ConfigureAwait(false);
                Post(() =>
                {
                    if (state.Find(request.Name)?.Epoch == epoch) manager.SilenceHeld(request.Name, epoch);
                });
            }
            catch (ClusterException e)
            {
                Post(() => FailVmRequest(requester, request.Name, e.Message));
            }
        });
    }

    /// <summary>A replica says its primary fell silent (leader, on the loop).</summary>
    private void NoteLostPrimary(VmRequest report, string replica)
    {
        if (state.Find(report.Name) is not { } placement || placement.Epoch != report.Epoch || !placement.Replicas.Contains(replica)) return;
        if (!failoverReports.TryGetValue(report.Name, out var reports) || reports.Epoch != report.Epoch)
        {
            reports = (report.Epoch, new Dictionary<string, (long, long)>(StringComparer.Ordinal), NowMs);
            failoverReports[report.Name] = reports;
        }
        reports.Received[replica] = (report.ReceivedBytes, report.ReplayedExits);
    }

    /// <summary>
    /// Each tick: replicas report silent primaries to the leader; the leader promotes the replica holding the most
    /// log, at a higher epoch (the old primary is fenced off: replicas accept only the placement's primary and epoch).
    /// </summary>
    private void TickFailovers()
    {
        if (vms is null || raft is null || gossip is null) return;
        foreach (var (vm, epoch, node) in vms.DivergedReplicas())
            HandleVmRequest(new VmRequest("replica-diverged", vm, Epoch: epoch, Node: node), identity.NodeId);
        foreach (var (vm, epoch, node) in vms.SilentReplicas())
            HandleVmRequest(new VmRequest("replica-lost", vm, Epoch: epoch, Node: node), identity.NodeId);
        TickRepairs();
        foreach (var lost in vms.LostPrimaries())
            HandleVmRequest(new VmRequest("primary-lost", lost.Vm, Epoch: lost.Epoch, ReceivedBytes: lost.ReceivedBytes, ReplayedExits: lost.ReplayedExits), identity.NodeId);
        if (raft.State != RaftState.Leader) return;
        long now = NowMs;
        foreach (var (name, reports) in failoverReports.ToList())
        {
            if (state.Find(name) is not { } placement || placement.Epoch != reports.Epoch)
            {
                failoverReports.Remove(name);
                continue;
            }
            bool primaryAlive = gossip.Members.Any(m => m.Info.NodeId == placement.Primary && m.Status == MemberStatus.Alive);
            bool everyone = placement.Replicas.All(reports.Received.ContainsKey);
            long waited = now - reports.FirstMs;
            // Decide at once when every replica reported (the one holding the most log is known); otherwise give the
            // others a moment, and while gossip still sees the primary alive, up to a second.
            if (!everyone && (waited < FailoverGatherMs || (primaryAlive && waited < FailoverMaxWaitMs))) continue;
            failoverReports.Remove(name);
            // The most log wins (nothing released is lost); among equals, the one furthest in its replay goes live soonest.
            string chosen = reports.Received.OrderByDescending(r => r.Value.Bytes).ThenByDescending(r => r.Value.Replayed).ThenBy(r => r.Key, StringComparer.Ordinal).First().Key;
            var next = placement with { Epoch = placement.Epoch + 1, Primary = chosen, Replicas = placement.Replicas.Where(r => r != chosen).ToList() };
            if (raft.Propose(ClusterState.Encode(new PutPlacement(next))).Accepted)
                ClusterLog.Failover(logger, name, placement.Primary, chosen, next.Epoch, reports.Received[chosen].Bytes);
        }
    }

    /// <summary>
    /// Repair (leader, every half second): a VM whose replicas gossip declared dead, or that has fewer replicas than
    /// it was created with, gets new ones on other live nodes (new sites first) within its epoch. A new replica
    /// replays the primary's log from its start (the primary keeps the whole log; snapshots come later).
    /// </summary>
    private void TickRepairs()
    {
        if (raft is null || gossip is null || raft.State != RaftState.Leader) return;
        long now = NowMs;
        if (now < nextRepairMs) return;
        nextRepairMs = now + 500;
        var status = gossip.Members.ToDictionary(m => m.Info.NodeId, m => m.Status, StringComparer.Ordinal);
        foreach (var placement in state.Placements)
        {
            if (placement.Spec is null || failoverReports.ContainsKey(placement.Vm)) continue;
            if (status.GetValueOrDefault(placement.Primary) is not MemberStatus.Alive) continue;
            var keep = placement.Replicas.Where(r => status.GetValueOrDefault(r) is MemberStatus.Alive or MemberStatus.Suspect && !divergedReplicas.Contains((placement.Vm, r))).ToList();
            int wanted = placement.WantedReplicas > 0 ? placement.WantedReplicas : placement.Replicas.Count;
            if (keep.Count == placement.Replicas.Count && keep.Count >= wanted) continue;
            var taken = new HashSet<string>(keep.Append(placement.Primary), StringComparer.Ordinal);
            var sites = gossip.Members.Where(m => taken.Contains(m.Info.NodeId)).Select(m => m.Info.Site).ToHashSet(StringComparer.Ordinal);
            var spare = gossip.Members.Where(m => m.Status == MemberStatus.Alive && !taken.Contains(m.Info.NodeId) && !divergedReplicas.Contains((placement.Vm, m.Info.NodeId)))
                .OrderBy(m => sites.Contains(m.Info.Site) ? 1 : 0).ThenBy(m => m.Info.State == "idle" ? 0 : 1).ThenBy(m => m.Info.NodeId, StringComparer.Ordinal)
                .Select(m => m.Info.NodeId);
            var next = keep.Concat(spare).Take(wanted).ToList();
            if (next.SequenceEqual(placement.Replicas)) continue;
            if (raft.Propose(ClusterState.Encode(new SetReplicas(placement.Vm, placement.Epoch, next))).Accepted)
                ClusterLog.Repair(logger, placement.Vm, string.Join(",", placement.Replicas), string.Join(",", next));
        }
    }

    private long nextRepairMs;

    /// <summary>(VM, node) pairs whose replay diverged: that node never holds a copy of that VM again.</summary>
    private readonly HashSet<(string Vm, string Node)> divergedReplicas = [];

    /// <summary>
    /// Distinct live nodes for a VM: idle before busy, fewer hosted VMs first, a new site before a site already
    /// chosen; the first is the primary.
    /// </summary>
    private List<string> ChooseNodes(int count)
    {
        var load = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var placement in state.Placements)
        {
            foreach (string node in placement.Replicas.Append(placement.Primary)) load[node] = load.GetValueOrDefault(node) + 1;
        }
        var candidates = gossip!.Members.Where(m => m.Status == MemberStatus.Alive)
            .OrderBy(m => m.Info.State == "idle" ? 0 : 1)
            .ThenBy(m => load.GetValueOrDefault(m.Info.NodeId))
            .ThenBy(m => m.Info.NodeId, StringComparer.Ordinal)
            .ToList();
        var chosen = new List<MemberSnapshot>();
        var sites = new HashSet<string>(StringComparer.Ordinal);
        foreach (var member in candidates)
        {
            if (chosen.Count == count) break;
            if (sites.Add(member.Info.Site)) chosen.Add(member);
        }
        foreach (var member in candidates)
        {
            if (chosen.Count == count) break;
            if (!chosen.Contains(member)) chosen.Add(member);
        }
        return chosen.Select(m => m.Info.NodeId).ToList();
    }

    private void FailVmRequest(string toNodeId, string name, string error)
    {
        if (toNodeId == identity.NodeId)
        {
            if (pendingVmRequests.Remove(name, out var pending)) pending.Done.TrySetException(new ClusterException(error));
            return;
        }
        if (RaftIdOf(toNodeId) is ulong id && AddressOf(id) is { } address)
            outbox!.Send(address, ChannelKind.Control, JsonSerializer.SerializeToUtf8Bytes(new ControlEnvelope(Failed: new VmRequestFailed(name, error)), ControlEnvelopeJsonContext.Default.ControlEnvelope));
    }

    /// <summary>A node-to-node control message (network thread).</summary>
    private void OnControlMessage(PeerMessage message)
    {
        ControlEnvelope? envelope;
        try
        {
            envelope = JsonSerializer.Deserialize(message.Payload.Span, ControlEnvelopeJsonContext.Default.ControlEnvelope);
        }
        catch (JsonException e)
        {
            ClusterLog.DroppedMessage(logger, "control", message.RemoteNodeId, e.Message);
            return;
        }
        if (envelope?.Request is { } request && request.Name is { Length: > 0 and <= 64 })
        {
            Post(() => HandleVmRequest(request, message.RemoteNodeId));
        }
        else if (envelope?.Failed is { } failed)
        {
            Post(() =>
            {
                if (pendingVmRequests.Remove(failed.Name, out var pending)) pending.Done.TrySetException(new ClusterException(failed.Error));
            });
        }
    }

    /// <summary>After entries were applied: complete waiting requests and bring local VM copies in line.</summary>
    private void AfterApply()
    {
        foreach (var (name, (op, done, epoch)) in pendingVmRequests.ToList())
        {
            var placement = state.Find(name);
            if (op == "failover" && placement is null)
            {
                pendingVmRequests.Remove(name);
                done.TrySetException(new ClusterException($"{name} was removed during the switchover"));
            }
            else if (op == "create" && placement is not null || op == "stop" && placement is null || op == "failover" && placement!.Epoch > epoch)
            {
                pendingVmRequests.Remove(name);
                done.TrySetResult(placement);
            }
        }
        ReconcileCopies();
    }

    /// <summary>Local VM copies and the front ends follow the placement table (loop).</summary>
    private void ReconcileCopies()
    {
        string? Address(string id) => RaftIdOf(id) is ulong raftId ? AddressOf(raftId) : null;
        vms?.Reconcile(state.Placements, Address);
        frontEnd?.Reconcile(state.Placements, Address);
    }

    private FrontEnd? frontEnd;

    /// <summary>A VmNet frame (network thread): front end → primary, or primary → front end.</summary>
    private void OnNetMessage(PeerMessage message)
    {
        NetMessage decoded;
        try
        {
            decoded = NetMessage.Decode(message.Payload);
        }
        catch (NetWireFormatException e)
        {
            ClusterLog.DroppedMessage(logger, "vmnet", message.RemoteNodeId, e.Message);
            return;
        }
        if (decoded.Type is NetMessageType.Open or NetMessageType.Input or NetMessageType.InputEnd or NetMessageType.OutputAck)
            vms?.OnFrontEndMessage(message.RemoteAddress, decoded);
        else
            frontEnd?.OnMessage(message.RemoteNodeId, decoded);
    }
}
