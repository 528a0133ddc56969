using P2PReplay.Linux;
using P2PReplay.Replay;

namespace P2PReplay.Vmm.Snapshots;

/// <summary>
/// Snapshots of a replaying VM (a replica), taken on its vCPU thread at an exit boundary while the replay goes on, and
/// the way back: a new replica from a snapshot and the log's tail.
/// </summary>
/// <remarks>
/// Repair: on an existing replica, <c>var snaps = ReplaySnapshots.Attach(vm, replayer)</c> (instead of
/// <c>RecordingSession.Attach</c>; or <see cref="Wrap"/> around an observer already set), then <c>await snaps.Request()</c> from any thread; <see cref="VmSnapshot.Encode"/>
/// the result off the vCPU thread and ship it; the log before <see cref="VmSnapshot.TailOffset"/> may then be dropped.
/// On the new replica: <see cref="VmSnapshot.Decode"/>, then <see cref="StartReplica"/> with the log from
/// <see cref="VmSnapshot.TailOffset"/> on, and <see cref="MicroVm.Run"/>.
/// </remarks>
internal sealed class ReplaySnapshots : IExitObserver
{
    private readonly MicroVm _vm;
    private readonly Replayer _replayer;
    private readonly IExitObserver _inner;
    private readonly Lock _lock = new();
    private readonly List<(long Exit, TaskCompletionSource<VmSnapshot> Done)> _requests = [];
    private volatile bool _pending;

    private ReplaySnapshots(MicroVm vm, Replayer replayer)
    {
        _vm = vm;
        _replayer = replayer;
        _inner = vm.Runner.Observer ?? throw new InvalidOperationException("the VM has no exit observer: attach the replayer first");
        vm.Runner.Observer = this;
    }

    /// <summary>Connects a replayer to a VM (as <see cref="RecordingSession.Attach(MicroVm, Replayer)"/>) and makes snapshots possible.</summary>
    public static ReplaySnapshots Attach(MicroVm vm, Replayer replayer)
    {
        RecordingSession.Attach(vm, replayer);
        return new(vm, replayer);
    }

    /// <summary>
    /// Makes snapshots possible on a VM whose exit observer is already set (one that runs the replayer's
    /// <see cref="Replayer.AfterExit"/>, like a replica's): snapshots are taken after it. Only while the VM replays:
    /// once it has gone live, the replayer's position means nothing and requests must not be made.
    /// </summary>
    public static ReplaySnapshots Wrap(MicroVm vm, Replayer replayer) => new(vm, replayer);

    /// <summary>Time the last snapshot took on the vCPU thread (the replay's pause).</summary>
    public TimeSpan LastCaptureTime { get; private set; }

    /// <summary>A snapshot at the next exit boundary (after that exit's digest checks); the replay goes on afterwards.</summary>
    public Task<VmSnapshot> Request() => RequestAt(0);

    /// <summary>A snapshot at the first exit boundary at or after exit <paramref name="exit"/>.</summary>
    public Task<VmSnapshot> RequestAt(long exit)
    {
        var done = new TaskCompletionSource<VmSnapshot>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _requests.Add((exit, done));
            _pending = true;
        }
        return done.Task;
    }

    public void AfterExit(long exit, bool guestExited)
    {
        try
        {
            _inner.AfterExit(exit, guestExited);
        }
        catch (Exception e)
        {
            // The replay stops here (divergence, truncated log): no snapshot will come.
            FailPending(e);
            throw;
        }
        if (!_pending) return;
        List<TaskCompletionSource<VmSnapshot>> due = [];
        lock (_lock)
        {
            for (int i = _requests.Count - 1; i >= 0; i--)
            {
                if (_requests[i].Exit > exit && !guestExited) continue;
                due.Add(_requests[i].Done);
                _requests.RemoveAt(i);
            }
            _pending = _requests.Count > 0;
        }
        if (due.Count == 0) return;
        if (guestExited)
        {
            foreach (var d in due) d.TrySetException(new InvalidOperationException($"the guest ended at exit {exit} before the snapshot could be taken"));
            return;
        }
        try
        {
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            var snapshot = _vm.CaptureSnapshot(_replayer.ResumePoint());
            LastCaptureTime = System.Diagnostics.Stopwatch.GetElapsedTime(started);
            foreach (var d in due) d.TrySetResult(snapshot);
        }
        catch (Exception e)
        {
            foreach (var d in due) d.TrySetException(e);
        }
    }

    /// <summary>Ends the outstanding requests with an error (the replay stopped, or the VM is going away).</summary>
    public void FailPending(Exception reason)
    {
        List<TaskCompletionSource<VmSnapshot>> pending;
        lock (_lock)
        {
            pending = [.. _requests.Select(r => r.Done)];
            _requests.Clear();
            _pending = false;
        }
        foreach (var d in pending) d.TrySetException(new InvalidOperationException($"no snapshot: {reason.Message}", reason));
    }

    /// <summary>
    /// A new replica from a snapshot: the replayer reads <paramref name="tail"/>, the log from
    /// <see cref="VmSnapshot.TailOffset"/> on (no earlier byte is needed), and the VM continues where the snapshot's
    /// VM stood. Run it with <see cref="MicroVm.Run"/>; dispose both. <paramref name="output"/> sees the guest's output
    /// from the snapshot on.
    /// </summary>
    public static (MicroVm Vm, Replayer Replayer, ReplayingHost Host) StartReplica(VmConfiguration config, VmSnapshot snapshot, Stream tail,
        IHostEnvironment? output, TextWriter? trace = null, Linux.Net.IHostNetwork? networkObserver = null)
    {
        var replayer = new Replayer(tail, snapshot.Resume);
        try
        {
            if (replayer.Header.ProgramSha256 != ImageHash.Of(config.Program))
                throw new SnapshotFormatException("the snapshot's recording ran another program than this configuration's");
            if (replayer.Header.MemorySize != config.MemorySize)
                throw new SnapshotFormatException($"the snapshot's recording had {replayer.Header.MemorySize} bytes of memory; this configuration has {config.MemorySize}");
            var host = new ReplayingHost(replayer, output) { NetworkObserver = networkObserver };
            var vm = MicroVm.Restore(config, snapshot, host, trace);
            RecordingSession.Attach(vm, replayer);
            return (vm, replayer, host);
        }
        catch
        {
            replayer.Dispose();
            throw;
        }
    }
}
