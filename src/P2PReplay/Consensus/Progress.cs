namespace P2PReplay.Consensus;

/// <summary>How the leader is currently sending to a peer.</summary>
public enum ReplicationState
{
    /// <summary>Looking for the match point: one append at a time.</summary>
    Probe,

    /// <summary>Streaming appends optimistically, bounded by the in-flight window.</summary>
    Replicate,

    /// <summary>Waiting for a snapshot to be installed.</summary>
    Snapshot,
}

/// <summary>Read-only view of the leader's bookkeeping for one peer.</summary>
public readonly record struct PeerProgress(ulong Match, ulong Next, ReplicationState State, bool IsLearner, bool RecentActive);

/// <summary>The leader's bookkeeping for one peer (etcd-raft's Progress).</summary>
internal sealed class Progress(ulong next, int maxInflight, bool isLearner)
{
    private readonly Queue<ulong> inflight = new();

    public ulong Match { get; set; }

    public ulong Next { get; set; } = next;

    public ReplicationState State { get; private set; } = ReplicationState.Probe;

    public bool IsLearner { get; set; } = isLearner;

    /// <summary>Heard from since the last check-quorum round.</summary>
    public bool RecentActive { get; set; } = true;

    /// <summary>In Probe: an append is outstanding, wait for its answer (or a heartbeat answer).</summary>
    public bool ProbeSent { get; set; }

    public ulong PendingSnapshot { get; private set; }

    /// <summary>Ticks spent waiting for a snapshot answer; the snapshot is resent after an election timeout (it may have been lost).</summary>
    public int SnapshotTicks { get; set; }

    public bool InflightFull => inflight.Count >= maxInflight;

    public bool IsPaused => State switch
    {
        ReplicationState.Probe => ProbeSent,
        ReplicationState.Replicate => InflightFull,
        _ => true,
    };

    public PeerProgress View => new(Match, Next, State, IsLearner, RecentActive);

    public void BecomeProbe()
    {
        ulong floor = State == ReplicationState.Snapshot ? Math.Max(Match, PendingSnapshot) : Match;
        State = ReplicationState.Probe;
        Next = floor + 1;
        ProbeSent = false;
        PendingSnapshot = 0;
        inflight.Clear();
    }

    public void BecomeReplicate()
    {
        State = ReplicationState.Replicate;
        Next = Match + 1;
        ProbeSent = false;
        inflight.Clear();
    }

    public void BecomeSnapshot(ulong snapshotIndex)
    {
        State = ReplicationState.Snapshot;
        PendingSnapshot = snapshotIndex;
        SnapshotTicks = 0;
        ProbeSent = false;
        inflight.Clear();
    }

    /// <summary>An acknowledgement up to n: returns whether Match moved.</summary>
    public bool MaybeUpdate(ulong n)
    {
        bool updated = false;
        if (Match < n)
        {
            Match = n;
            updated = true;
            ProbeSent = false;
        }
        Next = Math.Max(Next, n + 1);
        return updated;
    }

    public void OptimisticUpdate(ulong last)
    {
        Next = last + 1;
        inflight.Enqueue(last);
    }

    /// <summary>A rejection of the append after `rejected`: returns whether Next moved (false for stale rejections).</summary>
    public bool MaybeDecreaseTo(ulong rejected, ulong matchHint)
    {
        if (State == ReplicationState.Replicate)
        {
            if (rejected <= Match) return false;
            Next = Match + 1;
            return true;
        }
        if (Next - 1 != rejected) return false;
        Next = Math.Max(Math.Min(rejected, matchHint + 1), Match + 1);
        ProbeSent = false;
        return true;
    }

    public void FreeInflightUpTo(ulong index)
    {
        while (inflight.Count > 0 && inflight.Peek() <= index) inflight.Dequeue();
    }

    public void FreeFirstInflight()
    {
        if (inflight.Count > 0) inflight.Dequeue();
    }
}
