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

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(StatusBody))]
[JsonSerializable(typeof(PeerBody))]
[JsonSerializable(typeof(List<PeerBody>))]
[JsonSerializable(typeof(TokenBody))]
[JsonSerializable(typeof(InitBody))]
internal sealed partial class ControlJsonContext : JsonSerializerContext;
