using System.Text.Json;
using System.Text.Json.Serialization;

namespace P2PReplay.Cluster;

/// <summary>Where one VM runs: its fencing epoch, its primary and replicas (node ids), its image's hash and what it runs.</summary>
internal sealed record Placement(string Vm, ulong Epoch, string Primary, IReadOnlyList<string> Replicas, string ImageHash, VmSpec? Spec = null, int WantedReplicas = 0, long CreatedUnixMs = 0);

/// <summary>What a VM runs: the program (by path, checked against its SHA-256 on every node), argv, env, memory.</summary>
internal sealed record VmSpec(string ProgramPath, IReadOnlyList<string> Arguments, IReadOnlyList<string> Environment, long MemoryBytes, string ProgramSha256)
{
    /// <summary>Guest ports every daemon's front end serves, on the given host port.</summary>
    public IReadOnlyList<ExposedPort>? Expose { get; init; }

    /// <summary>The content hash of the VM's image (null: no image, the program is a host path); ProgramPath is then
    /// the program's path inside the image. Every node holding a copy gets the image by this hash.</summary>
    public string? ImageHash { get; init; }

    /// <summary>The node that imported the image (asked first for it; then the placement's other nodes).</summary>
    public string? ImageSource { get; init; }
}

/// <summary>A guest's listening port served by every daemon on a host port (--expose GUESTPORT[:HOSTPORT]).</summary>
internal sealed record ExposedPort(int GuestPort, int HostPort);

/// <summary>A change to the replicated cluster state, carried in a Raft log entry.</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "op")]
[JsonDerivedType(typeof(PutPlacement), "put-placement")]
[JsonDerivedType(typeof(RemovePlacement), "remove-placement")]
[JsonDerivedType(typeof(SetReplicas), "set-replicas")]
internal abstract record ClusterCommand;

/// <summary>Creates or replaces a VM's placement; refused unless its epoch is higher than the current one.</summary>
internal sealed record PutPlacement(Placement Placement) : ClusterCommand;

internal sealed record RemovePlacement(string Vm) : ClusterCommand;

/// <summary>Replaces a VM's replicas (repair) within its current epoch; refused if the epoch moved on meanwhile.</summary>
internal sealed record SetReplicas(string Vm, ulong Epoch, IReadOnlyList<string> Replicas) : ClusterCommand;

/// <summary>What applying a command did (the proposer reports it to its client).</summary>
internal sealed record ApplyResult(bool Applied, string Message);

/// <summary>
/// The cluster's replicated state machine: the placement table (VM -> epoch, primary, replicas, image hash).
/// Applied in Raft commit order on every node, so it must be deterministic: no clocks, no randomness, no I/O.
/// </summary>
internal sealed class ClusterState
{
    private readonly SortedDictionary<string, Placement> placements = new(StringComparer.Ordinal);

    /// <summary>The Raft index of the last applied entry.</summary>
    public ulong AppliedIndex { get; private set; }

    public IReadOnlyCollection<Placement> Placements => placements.Values;

    public Placement? Find(string vm) => placements.GetValueOrDefault(vm);

    public static byte[] Encode(ClusterCommand command) => JsonSerializer.SerializeToUtf8Bytes(command, ClusterJsonContext.Default.ClusterCommand);

    /// <summary>Applies a committed entry's data. An undecodable entry is skipped identically on every node.</summary>
    public ApplyResult Apply(ulong index, ReadOnlySpan<byte> data)
    {
        if (index <= AppliedIndex) throw new InvalidOperationException($"entry {index} applied out of order (applied up to {AppliedIndex})");
        AppliedIndex = index;
        if (data.IsEmpty) return new ApplyResult(false, "empty entry (a new leader's no-op)");
        ClusterCommand? command;
        try
        {
            command = JsonSerializer.Deserialize(data, ClusterJsonContext.Default.ClusterCommand);
        }
        catch (JsonException e)
        {
            return new ApplyResult(false, $"undecodable command: {e.Message}");
        }
        switch (command)
        {
            case PutPlacement { Placement: var placement }:
                if (placements.TryGetValue(placement.Vm, out var current) && placement.Epoch <= current.Epoch)
                    return new ApplyResult(false, $"stale epoch {placement.Epoch} for {placement.Vm} (current {current.Epoch})");
                placements[placement.Vm] = placement;
                return new ApplyResult(true, $"{placement.Vm} epoch {placement.Epoch} primary {placement.Primary}");
            case SetReplicas { Vm: var name, Epoch: var epoch, Replicas: var chosen }:
                if (!placements.TryGetValue(name, out var existing)) return new ApplyResult(false, $"no VM named {name}");
                if (existing.Epoch != epoch) return new ApplyResult(false, $"stale epoch {epoch} for {name} (current {existing.Epoch})");
                if (chosen.Contains(existing.Primary)) return new ApplyResult(false, $"the primary of {name} cannot be its own replica");
                placements[name] = existing with { Replicas = [.. chosen] };
                return new ApplyResult(true, $"{name} replicas {string.Join(',', chosen)}");
            case RemovePlacement { Vm: var vm }:
                return placements.Remove(vm) ? new ApplyResult(true, $"{vm} removed") : new ApplyResult(false, $"no VM named {vm}");
            default:
                return new ApplyResult(false, "unknown command");
        }
    }

    /// <summary>The whole state, for a Raft snapshot.</summary>
    public byte[] Snapshot() =>
        JsonSerializer.SerializeToUtf8Bytes(new ClusterSnapshot(AppliedIndex, [.. placements.Values]), ClusterJsonContext.Default.ClusterSnapshot);

    /// <summary>Replaces the state with a snapshot's.</summary>
    public void Restore(ReadOnlySpan<byte> snapshot)
    {
        var decoded = snapshot.IsEmpty ? new ClusterSnapshot(0, []) : JsonSerializer.Deserialize(snapshot, ClusterJsonContext.Default.ClusterSnapshot)
            ?? throw new InvalidDataException("the cluster state snapshot is null");
        placements.Clear();
        foreach (var placement in decoded.Placements) placements[placement.Vm] = placement;
        AppliedIndex = decoded.AppliedIndex;
    }

    /// <summary>Restores a snapshot taken at a Raft index (the snapshot's own index may be lower when it was empty).</summary>
    public void Restore(ReadOnlySpan<byte> snapshot, ulong index)
    {
        Restore(snapshot);
        AppliedIndex = Math.Max(AppliedIndex, index);
    }
}

internal sealed record ClusterSnapshot(ulong AppliedIndex, IReadOnlyList<Placement> Placements);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(ClusterCommand))]
[JsonSerializable(typeof(ClusterSnapshot))]
internal sealed partial class ClusterJsonContext : JsonSerializerContext;
