using Microsoft.Extensions.Logging;

namespace P2PReplay.Cluster.Vms;

/// <summary>Log lines of the replicated VMs (source-generated).</summary>
internal static partial class VmLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "vm {Vm}: starting the primary (epoch {Epoch}, {Replicas} replicas)")]
    public static partial void PrimaryStarting(ILogger logger, string vm, ulong epoch, int replicas);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {Vm}: starting a replica of {Primary}'s copy (epoch {Epoch})")]
    public static partial void ReplicaStarting(ILogger logger, string vm, string primary, ulong epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: the primary failed: {Reason}")]
    public static partial void PrimaryFailed(ILogger logger, string vm, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "vm {Vm}: replica {Node} reports a divergence; it must not be promoted")]
    public static partial void ReplicaReportsDivergence(ILogger logger, string vm, string node);

    [LoggerMessage(Level = LogLevel.Error, Message = "vm {Vm}: replica diverged: {Reason}")]
    public static partial void ReplicaDiverged(ILogger logger, string vm, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: replica failed: {Reason}")]
    public static partial void ReplicaFailed(ILogger logger, string vm, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: the {Role} did not stop within 5 s")]
    public static partial void SlowStop(ILogger logger, string vm, string role);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm stream: dropped a malformed message from {Node}: {Reason}")]
    public static partial void MalformedMessage(ILogger logger, string node, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: this replica is the primary now (epoch {Epoch}): replayed up to exit {Exit} ({Bytes} log bytes), running live from here")]
    public static partial void WentLive(ILogger logger, string vm, ulong epoch, long exit, long bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: no word from the primary {Primary} for {Milliseconds} ms (epoch {Epoch}); asking for a failover")]
    public static partial void PrimarySilent(ILogger logger, string vm, string primary, long milliseconds, ulong epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: this node is its primary at epoch {Epoch} but lost its copy (the daemon restarted); a replica takes over")]
    public static partial void LostCopy(ILogger logger, string vm, ulong epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {Vm}: guest port {GuestPort} is served at {Address}")]
    public static partial void Exposed(ILogger logger, string vm, int guestPort, string address);

    [LoggerMessage(Level = LogLevel.Error, Message = "vm {Vm}: cannot serve host port {HostPort}: {Reason}")]
    public static partial void ExposeFailed(ILogger logger, string vm, int hostPort, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {Vm}: held at epoch {Epoch} for a switchover to {Target}; its log is sealed at {Bytes} bytes, all received there ({Milliseconds} ms)")]
    public static partial void SwitchoverReady(ILogger logger, string vm, ulong epoch, string target, long bytes, long milliseconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: the switchover at epoch {Epoch} was not carried out in time; this held copy falls silent so its replicas fail over")]
    public static partial void SwitchoverAbandoned(ILogger logger, string vm, ulong epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: no acknowledgement from the replica {Node} for {Milliseconds} ms (epoch {Epoch}); its output is held until the cluster drops it")]
    public static partial void ReplicaSilent(ILogger logger, string vm, string node, long milliseconds, ulong epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {Vm}: checkpoint taken at exit {Exits} (log continues at byte {TailOffset}): {Bytes} bytes, the replay paused {CaptureMs:F1} ms")]
    public static partial void CheckpointTaken(ILogger logger, string vm, long exits, long tailOffset, int bytes, double captureMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {Vm}: adopted the checkpoint from {Node} (log continues at byte {TailOffset}, {Bytes} bytes); the log before it is dropped once every replica has it")]
    public static partial void CheckpointAdopted(ILogger logger, string vm, string node, long tailOffset, int bytes);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {Vm}: this replica starts from a checkpoint at exit {Exits} (log from byte {TailOffset}, checkpoint {Bytes} bytes)")]
    public static partial void StartsFromCheckpoint(ILogger logger, string vm, long tailOffset, long exits, int bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: could not take a checkpoint: {Reason}")]
    public static partial void CheckpointFailed(ILogger logger, string vm, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: dropped a bad checkpoint: {Reason}")]
    public static partial void BadCheckpoint(ILogger logger, string vm, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {Vm}: the replica {Node} reports its replay failed (epoch {Epoch}); asking the cluster to drop it")]
    public static partial void ReplicaFailedDropped(ILogger logger, string vm, string node, ulong epoch);
}
