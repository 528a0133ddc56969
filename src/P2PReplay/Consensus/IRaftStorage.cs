namespace P2PReplay.Consensus;

/// <summary>
/// Persistent Raft state. The node reads it; only the driver loop writes it, with the contents of a Ready
/// (<see cref="Save"/>) before calling Advance, and through <see cref="RaftNode.Compact"/>.
/// The log holds entries (Snapshot.Index, LastIndex]; Term(Snapshot.Index) answers the snapshot's term.
/// </summary>
public interface IRaftStorage
{
    /// <summary>The saved hard state and the membership recorded in the snapshot (the node replays later changes).</summary>
    (HardState HardState, ConfState ConfState) InitialState();

    /// <summary>Entries [lo, hi); lo ≥ FirstIndex, hi ≤ LastIndex + 1.</summary>
    IReadOnlyList<Entry> Entries(ulong lo, ulong hi);

    /// <summary>The term of entry <paramref name="index"/>, or null if compacted away or not in the log.</summary>
    ulong? Term(ulong index);

    /// <summary>Index of the first entry still in the log (snapshot index + 1).</summary>
    ulong FirstIndex { get; }

    ulong LastIndex { get; }

    Snapshot Snapshot { get; }

    /// <summary>Durably stores, in this order: the snapshot (replacing the log unless it matches it), the entries (truncating a conflicting suffix), the hard state.</summary>
    void Save(HardState? hardState, IReadOnlyList<Entry> entries, Snapshot? snapshot);

    /// <summary>Durably stores a snapshot taken by the application at an applied index and drops the entries it covers.</summary>
    void Compact(Snapshot snapshot);
}
