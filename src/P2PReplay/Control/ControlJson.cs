using System.Text.Json.Serialization;

namespace P2PReplay.Control;

/// <summary>Every error of the control API: a status code and this body.</summary>
internal sealed record ErrorBody(string Message);

/// <summary>GET /v1/status: this node, the Raft view, the members.</summary>
internal sealed record StatusBody(
    string NodeId,
    string Address,
    string Site,
    bool InCluster,
    string RaftState,
    string? Leader,
    ulong Term,
    ulong CommitIndex,
    int Voters,
    int Learners,
    IReadOnlyList<PeerBody> Members,
    string Version);

/// <summary>One row of GET /v1/peers.</summary>
internal sealed record PeerBody(
    string Id,
    string Address,
    string Site,
    string Status,
    string State,
    int Cores,
    long MemoryBytes,
    string Raft,
    long? LastSeenMsAgo,
    double? RoundTripMs,
    bool Self);

/// <summary>POST /v1/cluster/init's optional body: whether the token names this node as a seed (off for LAN-only clusters found by mDNS).</summary>
internal sealed record InitBody(bool IncludeSeeds = true);

/// <summary>POST /v1/cluster/init answers with the join token; POST /v1/cluster/join takes one.</summary>
internal sealed record TokenBody(string Token);

/// <summary>POST /v1/vms: the VM to create. The program must be a static x86-64 ELF at the same path on every node.</summary>
internal sealed record VmCreateBody(string Name, int Replicas, string Program, IReadOnlyList<string>? Arguments = null, IReadOnlyList<string>? Environment = null, long? MemoryMib = null)
{
    /// <summary>"GUESTPORT" or "GUESTPORT:HOSTPORT" (the host port defaults to the guest port).</summary>
    public IReadOnlyList<string>? Expose { get; init; }

    /// <summary>An absolute directory on the daemon's machine: the VM's image, imported into the daemon's store.</summary>
    public string? Image { get; init; }
}

/// <summary>POST /v1/vms/{name}/failover: the replica to hand over to (null: the one holding the most log).</summary>
internal sealed record VmFailoverBody(string? To = null);

/// <summary>One replica's position.</summary>
internal sealed record ReplicaBody(string NodeId, string State, long ReplayedExits, long ReceivedBytes, long LagExits, long? LagMs, bool Live);

/// <summary>A VM: its placement and, from the node answering, its copy's progress.</summary>
internal sealed record VmBody(
    string Name,
    ulong Epoch,
    string Primary,
    IReadOnlyList<string> Replicas,
    string ImageHash,
    string Program,
    IReadOnlyList<string> Arguments,
    string Role,
    string State,
    string? Error,
    long Exits,
    long LogBytes,
    IReadOnlyList<ReplicaBody> ReplicaStatus)
{
    /// <summary>This node's copy holds the log from this byte on (the part before is behind a checkpoint).</summary>
    public long LogStart { get; init; }

    /// <summary>The log offset of the latest checkpoint this copy holds (-1: none).</summary>
    public long CheckpointOffset { get; init; } = -1;
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(StatusBody))]
[JsonSerializable(typeof(PeerBody))]
[JsonSerializable(typeof(List<PeerBody>))]
[JsonSerializable(typeof(TokenBody))]
[JsonSerializable(typeof(InitBody))]
[JsonSerializable(typeof(VmCreateBody))]
[JsonSerializable(typeof(VmFailoverBody))]
[JsonSerializable(typeof(VmBody))]
[JsonSerializable(typeof(List<VmBody>))]
internal sealed partial class ControlJsonContext : JsonSerializerContext;
