namespace P2PReplay.Cluster.Vms;

/// <summary>
/// Holds a live copy's guest still for a planned switchover, so its log can be sealed at a clean point that every
/// replica then receives in full: the new primary takes over exactly there and no replica holds a tail it lacks.
/// <para>The guest is held either between exits (the run loop paused: the vCPU thread parks here after flushing
/// the log) or inside a network wait (the wait stops taking client input; the log was shipped before the guest
/// blocked). Either way the vCPU thread records nothing more until the hold is released (the switchover was called
/// off) or the copy is torn down.</para>
/// </summary>
internal sealed class SwitchoverHold : IDisposable
{
    /// <summary>A monitor, not a Lock: the parked vCPU thread waits on it.</summary>
    private readonly object gate = new();
    private TaskCompletionSource? quiet;
    /// <summary>Written under the lock; read without it on the guest's network-wait path.</summary>
    private volatile bool held;
    private bool pausedByUs;
    private bool disposed;

    /// <summary>A hold is asked for or in force.</summary>
    public bool Held => held;

    /// <summary>
    /// Asks for the hold (any thread); the task completes once the vCPU is held with its log flushed. The caller
    /// then pauses the run loop and holds the network waits (see <see cref="PrimaryVm.HoldAsync"/>); false when a
    /// hold is already in force.
    /// </summary>
    public bool TryBegin(out Task heldTask)
    {
        lock (gate)
        {
            if (held || disposed)
            {
                heldTask = Task.CompletedTask;
                return false;
            }
            held = true;
            pausedByUs = true;
            quiet = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            heldTask = quiet.Task;
            return true;
        }
    }

    /// <summary>The vCPU thread is held (in a network wait, or parked after a pause) with its log flushed.</summary>
    public void Quiet()
    {
        lock (gate) quiet?.TrySetResult();
    }

    /// <summary>The switchover was called off: the guest goes on.</summary>
    public void Release()
    {
        lock (gate)
        {
            held = false;
            quiet = null;
            Monitor.PulseAll(gate);
        }
    }

    /// <summary>
    /// On the vCPU thread after the run loop returned Paused: a pause of ours parks here (after <paramref name="flush"/>)
    /// until the hold is released (true: run on) or the copy is torn down (false); any other pause returns false.
    /// </summary>
    public bool ParkAfterPause(Action flush)
    {
        lock (gate)
        {
            if (!pausedByUs || disposed) return false;
            pausedByUs = false;
            if (held)
            {
                flush();
                quiet?.TrySetResult();
            }
            while (held && !disposed) Monitor.Wait(gate);
            return !disposed;
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            disposed = true;
            quiet?.TrySetCanceled();
            Monitor.PulseAll(gate);
        }
    }
}

/// <summary>What a live copy (the primary, or a promoted replica running live) lends a planned switchover.</summary>
internal interface ILiveCopy
{
    Placement Placement { get; }
    LogBuffer Log { get; }
    LogStreamer? LiveStreamer { get; }
    MachineHandle Machine { get; }
    VmConnections Connections { get; }
    SwitchoverHold Hold { get; }
}

/// <summary>The steps of a planned switchover on the primary's node.</summary>
internal static class Switchover
{
    /// <summary>Holds the guest and seals its log; returns the sealed length (the hold is released on failure).</summary>
    public static async Task<long> HoldAsync(ILiveCopy copy, TimeSpan timeout, CancellationToken cancel)
    {
        string vm = copy.Placement.Vm;
        if (!copy.Hold.TryBegin(out var quiet)) throw new ClusterException($"a switchover of {vm} is already in progress");
        copy.Connections.Nudge();
        copy.Machine.Pause();
        try
        {
            await quiet.WaitAsync(timeout, cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            Release(copy);
            throw new ClusterException($"{vm} did not reach a point where it can be handed over within {timeout.TotalMilliseconds:0} ms (has it exited?)");
        }
        long sealedLength = copy.Log.Seal();
        if (sealedLength < 0)
        {
            Release(copy);
            throw new ClusterException($"{vm} was held with part of its log unflushed; try again");
        }
        return sealedLength;
    }

    /// <summary>Waits until the target replica acknowledged the whole sealed log (false: it did not in time).</summary>
    public static async Task<bool> WaitForTargetAsync(LogStreamer streamer, string target, long sealedLength, TimeSpan timeout, TimeProvider time, CancellationToken cancel)
    {
        long deadline = time.GetTimestamp() + (long)(timeout.TotalSeconds * time.TimestampFrequency);
        while (time.GetTimestamp() < deadline)
        {
            var progress = streamer.Replicas.FirstOrDefault(r => r.NodeId == target);
            if (progress is null || progress.State is ReplicaState.Diverged or ReplicaState.Failed) return false;
            if ((long)progress.ReceivedBytes >= sealedLength) return true;
            await Task.Delay(TimeSpan.FromMilliseconds(2), time, cancel).ConfigureAwait(false);
        }
        return false;
    }

    /// <summary>The switchover was called off before it was proposed: the guest runs on.</summary>
    public static void Release(ILiveCopy copy)
    {
        copy.Log.Unseal();
        copy.Hold.Release();
        copy.Connections.Nudge();
    }
}
