using Microsoft.Extensions.Logging;
using P2PReplay.Transport;

namespace P2PReplay.Cluster.Vms;

/// <summary>A VM as this node knows it: its placement, and the local copy's progress if this node runs one.</summary>
internal sealed record VmView(
    Placement Placement,
    string Role,
    string State,
    string? Error,
    long Exits,
    long LogBytes,
    IReadOnlyList<ReplicaView> Replicas);

/// <summary>One replica's position as its primary sees it (or as the replica itself sees it).</summary>
internal sealed record ReplicaView(string NodeId, string State, long ReplayedExits, long ReceivedBytes, long LagExits, long LagMs, bool Live);

/// <summary>
/// Runs this node's share of the placement table: a primary for each VM placed here as primary, a replica for each
/// placed here as replica; stops copies whose placement went away. Routes VM log stream messages to them.
/// </summary>
internal sealed class VmManager(string selfId, PeerNetwork network, ILogger logger, Func<long> nowMs) : IDisposable
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, (Placement Placement, PrimaryVm Vm)> primaries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (Placement Placement, ReplicaVm Vm)> replicas = new(StringComparer.Ordinal);

    /// <summary>Brings the local copies in line with the placement table (cluster loop thread).</summary>
    public void Reconcile(IReadOnlyCollection<Placement> placements, Func<string, string?> addressOf)
    {
        var wanted = placements.ToDictionary(p => p.Vm, StringComparer.Ordinal);
        List<IDisposable> stop = [];
        lock (gate)
        {
            foreach (var (name, (placement, vm)) in primaries.ToList())
            {
                if (wanted.TryGetValue(name, out var now) && now.Epoch == placement.Epoch && now.Primary == selfId) continue;
                primaries.Remove(name);
                stop.Add(vm);
            }
            foreach (var (name, (placement, vm)) in replicas.ToList())
            {
                if (wanted.TryGetValue(name, out var now) && now.Epoch == placement.Epoch && now.Replicas.Contains(selfId)) continue;
                replicas.Remove(name);
                stop.Add(vm);
            }
            foreach (var placement in placements)
            {
                if (placement.Spec is null) continue;
                if (placement.Primary == selfId && !primaries.ContainsKey(placement.Vm))
                {
                    var addresses = placement.Replicas.Select(id => (id, addressOf(id))).Where(r => r.Item2 is not null).Select(r => (r.id, r.Item2!)).ToList();
                    var vm = new PrimaryVm(placement, placement.Spec, addresses, network, logger, nowMs);
                    primaries[placement.Vm] = (placement, vm);
                    VmLog.PrimaryStarting(logger, placement.Vm, placement.Epoch, addresses.Count);
                    vm.Start();
                }
                else if (placement.Replicas.Contains(selfId) && !replicas.ContainsKey(placement.Vm) && addressOf(placement.Primary) is { } primaryAddress)
                {
                    var vm = new ReplicaVm(placement, primaryAddress, network, logger, nowMs);
                    replicas[placement.Vm] = (placement, vm);
                    VmLog.ReplicaStarting(logger, placement.Vm, placement.Primary, placement.Epoch);
                    vm.Start();
                }
            }
        }
        // Stopping joins VM threads: not under the lock, and not for long (RequestPause kicks the vCPU).
        foreach (var vm in stop) vm.Dispose();
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
            if (message.Type == VmMessageType.Ack)
            {
                if (primaries.TryGetValue(message.Vm, out var primary) && primary.Placement.Epoch == message.Epoch) primary.Vm.OnAck(fromNodeId, message);
                return;
            }
            // Only the placement's primary at the current epoch may feed a replica: an old primary is fenced off.
            if (replicas.TryGetValue(message.Vm, out var replica) && replica.Placement.Primary == fromNodeId && replica.Placement.Epoch == message.Epoch)
                replica.Vm.OnMessage(message);
        }
    }

    public VmView View(Placement placement)
    {
        lock (gate)
        {
            if (primaries.TryGetValue(placement.Vm, out var primary) && primary.Placement.Epoch == placement.Epoch)
            {
                var vm = primary.Vm;
                long now = nowMs();
                var views = vm.Replicas.Select(r => new ReplicaView(r.NodeId, r.State.ToString().ToLowerInvariant(), r.ReplayedExit, (long)r.ReceivedBytes,
                    Math.Max(0, vm.Exits - r.ReplayedExit), vm.LagMs(r.ReplayedExit), now - r.LastAckMs <= PrimaryVm.LiveAckMs)).ToList();
                return new VmView(placement, "primary", vm.State, vm.Error, vm.Exits, vm.LogBytes, views);
            }
            if (replicas.TryGetValue(placement.Vm, out var replica) && replica.Placement.Epoch == placement.Epoch)
            {
                var vm = replica.Vm;
                string state = vm.State.ToString().ToLowerInvariant() + (vm.ExitStatus is { } exit ? $" ({exit})" : "");
                var self = new ReplicaView(selfId, state, vm.ReplayedExits, vm.ReceivedBytes, Math.Max(0, vm.PrimaryExits - vm.ReplayedExits), -1, true);
                return new VmView(placement, "replica", state, vm.Error, vm.PrimaryExits, vm.PrimaryLogBytes, [self]);
            }
            return new VmView(placement, "none", "runs elsewhere", null, 0, 0, []);
        }
    }

    /// <summary>The guest's output as this node may show it: released output on the primary, replayed output on a replica.</summary>
    public byte[]? Output(string vm)
    {
        lock (gate)
        {
            if (primaries.TryGetValue(vm, out var primary)) return primary.Vm.ReleasedOutput();
            if (replicas.TryGetValue(vm, out var replica)) return replica.Vm.Output.UpTo(long.MaxValue);
            return null;
        }
    }

    public void Dispose()
    {
        List<IDisposable> all;
        lock (gate)
        {
            all = [.. primaries.Values.Select(p => (IDisposable)p.Vm), .. replicas.Values.Select(r => (IDisposable)r.Vm)];
            primaries.Clear();
            replicas.Clear();
        }
        foreach (var vm in all) vm.Dispose();
    }
}
