namespace P2PReplay.Cluster;

/// <summary>One member as this node sees it (gossip status plus its Raft role).</summary>
internal sealed record MemberView(
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

/// <summary>A consistent picture of this node, published by the node's loop after every step.</summary>
internal sealed record NodeStatus(
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
    IReadOnlyList<MemberView> Members);

/// <summary>A request the cluster cannot serve now (not a member yet, already a member, bad token).</summary>
internal sealed class ClusterException(string message, int status = 409) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>What the control API needs from the running node.</summary>
internal interface IClusterControl
{
    NodeStatus Status();

    /// <summary>Creates a cluster with this node as its first member; returns the join token for the others.</summary>
    Task<string> InitAsync(bool includeSeeds, CancellationToken cancel);

    /// <summary>Stores the token's secret and dials its seeds.</summary>
    Task JoinAsync(string token, CancellationToken cancel);

    /// <summary>Asks the leader to place a new VM; completes when the placement is applied here.</summary>
    Task<Placement> CreateVmAsync(string name, int replicaCount, VmSpec spec, CancellationToken cancel);

    /// <summary>Asks the leader to remove a VM; completes when the removal is applied here.</summary>
    Task StopVmAsync(string name, CancellationToken cancel);

    /// <summary>Planned switchover: moves the primary to a replica (the given one, or the one holding the most log);
    /// completes when the new placement is applied here.</summary>
    Task<Placement> FailoverVmAsync(string name, string? target, CancellationToken cancel);

    IReadOnlyList<Vms.VmView> ListVms();

    Vms.VmView? ShowVm(string name);

    /// <summary>The guest's output this node may show (null: it runs no copy of the VM).</summary>
    byte[]? VmOutput(string name);

    /// <summary>Imports a directory into this node's image store (a copy, verified); returns its hash and its root there.</summary>
    (string Hash, string Root) ImportImage(string directory);
}
