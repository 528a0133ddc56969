using Microsoft.Extensions.Logging;

namespace P2PReplay.Cluster;

/// <summary>The cluster node's log lines (source-generated).</summary>
internal static partial class ClusterLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "node {NodeId}: peer port {Address}, site {Site}, {Cores} cores, {MemoryMiB} MiB")]
    public static partial void Started(ILogger logger, string nodeId, string address, string site, int cores, long memoryMiB);

    [LoggerMessage(Level = LogLevel.Information, Message = "created a new cluster; this node is its first voter")]
    public static partial void ClusterCreated(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "joined a cluster; dialing {Count} seed peers: {Seeds}")]
    public static partial void ClusterJoined(ILogger logger, int count, string seeds);

    [LoggerMessage(Level = LogLevel.Information, Message = "raft: {State} in term {Term}, leader {Leader}")]
    public static partial void RaftRole(ILogger logger, string state, ulong term, string leader);

    [LoggerMessage(Level = LogLevel.Information, Message = "raft: membership change {Change} (leader's proposal)")]
    public static partial void ProposedMembership(ILogger logger, string change);

    [LoggerMessage(Level = LogLevel.Information, Message = "raft: configuration now {Voters} voters, {Learners} learners")]
    public static partial void Membership(ILogger logger, int voters, int learners);

    [LoggerMessage(Level = LogLevel.Information, Message = "gossip: {Member} ({Address}) is {Status}")]
    public static partial void MemberChanged(ILogger logger, string member, string address, string status);

    [LoggerMessage(Level = LogLevel.Information, Message = "mDNS: found peer {NodeId} at {Address}")]
    public static partial void LanPeerFound(ILogger logger, string nodeId, string address);

    [LoggerMessage(Level = LogLevel.Warning, Message = "dropped a {Kind} message from {Peer}: {Reason}")]
    public static partial void DroppedMessage(ILogger logger, string kind, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: its primary lost the replica {Node} at epoch {Epoch}; dropping it from the placement (repair places another)")]
    public static partial void ReplicaDropped(ILogger logger, string vm, string node, ulong epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {Vm}: planned switchover from {OldPrimary} to {NewPrimary} at epoch {Epoch} (log sealed at {Bytes} bytes)")]
    public static partial void Switchover(ILogger logger, string vm, string oldPrimary, string newPrimary, ulong epoch, long bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: failover from {OldPrimary} to {NewPrimary} at epoch {Epoch} (it holds {Bytes} log bytes)")]
    public static partial void Failover(ILogger logger, string vm, string oldPrimary, string newPrimary, ulong epoch, long bytes);

    [LoggerMessage(Level = LogLevel.Error, Message = "vm {Vm}: replica {Node} diverged; it is replaced and never promoted")]
    public static partial void ReplicaDiverged(ILogger logger, string vm, string node);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: repair: replicas {Before} -> {After}")]
    public static partial void Repair(ILogger logger, string vm, string before, string after);

    [LoggerMessage(Level = LogLevel.Warning, Message = "cannot save the known peers file: {Reason}")]
    public static partial void PeersFileFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "cluster loop step failed; continuing")]
    public static partial void LoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "the cluster loop fell {Milliseconds} ms behind its clock")]
    public static partial void LoopLate(ILogger logger, long milliseconds);
}
