namespace P2PReplay.Consensus;

/// <summary>
/// The node's view of its log: what storage holds plus what is not yet persisted (an incoming snapshot and
/// entries from <see cref="unstableOffset"/> on). Committed and applied indexes live here too.
/// </summary>
internal sealed class RaftLog
{
    private readonly IRaftStorage storage;
    private readonly List<Entry> unstable = [];
    private ulong unstableOffset;

    public RaftLog(IRaftStorage storage)
    {
        this.storage = storage;
        unstableOffset = storage.LastIndex + 1;
        Committed = storage.FirstIndex - 1;
        Applied = storage.FirstIndex - 1;
    }

    public ulong Committed { get; set; }

    public ulong Applied { get; set; }

    /// <summary>A snapshot received from the leader, not yet persisted.</summary>
    public Snapshot? UnstableSnapshot { get; private set; }

    public IReadOnlyList<Entry> UnstableEntries => unstable;

    public ulong FirstIndex => UnstableSnapshot is { } s ? s.Metadata.Index + 1 : storage.FirstIndex;

    public ulong LastIndex => unstable.Count > 0 ? unstableOffset + (ulong)unstable.Count - 1 : UnstableSnapshot is { } s ? s.Metadata.Index : storage.LastIndex;

    /// <summary>Last index known to be persisted (the unstable entries are not).</summary>
    public ulong StableLastIndex => unstable.Count > 0 ? unstableOffset - 1 : LastIndex;

    public ulong LastTerm => Term(LastIndex) ?? throw new InvalidOperationException("last term unavailable");

    public ulong? Term(ulong index)
    {
        if (UnstableSnapshot is { } s && index == s.Metadata.Index) return s.Metadata.Term;
        if (index >= unstableOffset)
        {
            ulong position = index - unstableOffset;
            return position < (ulong)unstable.Count ? unstable[(int)position].Term : null;
        }
        // Below an incoming snapshot nothing is known; otherwise storage holds everything below the unstable part.
        if (UnstableSnapshot is not null) return null;
        return storage.Term(index);
    }

    public bool MatchTerm(ulong index, ulong term) => Term(index) == term;

    public bool IsUpToDate(ulong lastIndex, ulong lastTerm) => lastTerm > LastTerm || (lastTerm == LastTerm && lastIndex >= LastIndex);

    public Snapshot Snapshot => UnstableSnapshot ?? storage.Snapshot;

    /// <summary>Entries [lo, hi) capped to maxCount, or null if lo has been compacted.</summary>
    public List<Entry>? Slice(ulong lo, ulong hi, int maxCount)
    {
        if (lo < FirstIndex) return null;
        if (hi > LastIndex + 1) hi = LastIndex + 1;
        if (lo >= hi) return [];
        if (hi - lo > (ulong)maxCount) hi = lo + (ulong)maxCount;
        var result = new List<Entry>((int)(hi - lo));
        if (lo < unstableOffset)
        {
            ulong storedHi = Math.Min(hi, unstableOffset);
            result.AddRange(storage.Entries(lo, storedHi));
        }
        if (hi > unstableOffset)
        {
            ulong from = Math.Max(lo, unstableOffset);
            result.AddRange(unstable.GetRange((int)(from - unstableOffset), (int)(hi - from)));
        }
        return result;
    }

    /// <summary>
    /// Follower append (figure 2): returns the last new index and the entries actually written (from the first
    /// conflict on), or null if the log does not match at (index, logTerm). The caller advances the commit.
    /// </summary>
    public (ulong LastNew, List<Entry> Appended)? MaybeAppend(ulong index, ulong logTerm, IReadOnlyList<Entry> entries)
    {
        if (!MatchTerm(index, logTerm)) return null;
        ulong lastNew = index + (ulong)entries.Count;
        int conflict = FindConflict(entries);
        if (conflict < 0) return (lastNew, []);
        if (entries[conflict].Index <= Committed) throw new InvalidOperationException($"entry {entries[conflict].Index} conflicts with committed entry (commit {Committed})");
        List<Entry> appended = [.. entries.Skip(conflict)];
        Append(appended);
        return (lastNew, appended);
    }

    private int FindConflict(IReadOnlyList<Entry> entries)
    {
        for (int i = 0; i < entries.Count; i++)
        {
            if (!MatchTerm(entries[i].Index, entries[i].Term)) return i;
        }
        return -1;
    }

    /// <summary>Fast backtracking: the largest index ≤ index whose term ≤ term, with that term.</summary>
    public (ulong Index, ulong Term) FindConflictByTerm(ulong index, ulong term)
    {
        while (true)
        {
            ulong? ours = Term(index);
            if (ours is null) return (index, 0);
            if (ours <= term || index == 0) return (index, ours.Value);
            index--;
        }
    }

    public void Append(IReadOnlyList<Entry> entries)
    {
        if (entries.Count == 0) return;
        ulong after = entries[0].Index;
        if (after <= Committed) throw new InvalidOperationException($"append at {after} would overwrite committed {Committed}");
        if (after > LastIndex + 1) throw new InvalidOperationException($"append at {after} leaves a gap after {LastIndex}");
        if (after == unstableOffset + (ulong)unstable.Count)
        {
            unstable.AddRange(entries);
        }
        else if (after <= unstableOffset)
        {
            // Replacing persisted entries too: the next Ready rewrites storage from here.
            unstableOffset = after;
            unstable.Clear();
            unstable.AddRange(entries);
        }
        else
        {
            unstable.RemoveRange((int)(after - unstableOffset), unstable.Count - (int)(after - unstableOffset));
            unstable.AddRange(entries);
        }
    }

    public void CommitTo(ulong index)
    {
        if (index <= Committed) return;
        if (index > LastIndex) throw new InvalidOperationException($"commit {index} beyond last index {LastIndex}");
        Committed = index;
    }

    /// <summary>Entries persisted through (index, term): drop them from the unstable part if still the same.</summary>
    public void StableTo(ulong index, ulong term)
    {
        if (unstable.Count == 0 || index < unstableOffset) return;
        ulong position = index - unstableOffset;
        if (position >= (ulong)unstable.Count || unstable[(int)position].Term != term) return;
        unstable.RemoveRange(0, (int)position + 1);
        unstableOffset = index + 1;
    }

    public void StableSnapshotTo(ulong index)
    {
        if (UnstableSnapshot is { } s && s.Metadata.Index == index) UnstableSnapshot = null;
    }

    /// <summary>Replaces the log by a snapshot from the leader (the log did not contain its last entry).</summary>
    public void Restore(Snapshot snapshot)
    {
        UnstableSnapshot = snapshot;
        unstable.Clear();
        unstableOffset = snapshot.Metadata.Index + 1;
        Committed = snapshot.Metadata.Index;
    }

    /// <summary>Committed entries the application has not applied yet.</summary>
    public List<Entry> NextCommitted(int maxCount)
    {
        ulong lo = Math.Max(Applied + 1, FirstIndex);
        if (Committed + 1 <= lo) return [];
        return Slice(lo, Committed + 1, maxCount) ?? [];
    }

    public bool HasNextCommitted => Committed > Math.Max(Applied, FirstIndex - 1);
}
