namespace P2PReplay.Consensus;

/// <summary>In-memory <see cref="IRaftStorage"/>: for tests, and the model that <see cref="Storage.FileRaftStorage"/> follows.</summary>
public sealed class MemoryRaftStorage : IRaftStorage
{
    private readonly RaftLogStore store = new();
    private HardState hardState;

    public (HardState HardState, ConfState ConfState) InitialState() => (hardState, store.Snapshot.Metadata.ConfState);

    public IReadOnlyList<Entry> Entries(ulong lo, ulong hi) => store.Entries(lo, hi);

    public ulong? Term(ulong index) => store.Term(index);

    public ulong FirstIndex => store.FirstIndex;

    public ulong LastIndex => store.LastIndex;

    public Snapshot Snapshot => store.Snapshot;

    public HardState HardState => hardState;

    public void Save(HardState? hardState, IReadOnlyList<Entry> entries, Snapshot? snapshot)
    {
        if (snapshot is not null) store.ApplySnapshot(snapshot);
        store.Append(entries);
        if (hardState is { } hs) this.hardState = hs;
    }

    public void Compact(Snapshot snapshot) => store.Compact(snapshot);
}

/// <summary>The log-plus-snapshot bookkeeping shared by the storages: entries (Snapshot.Index, LastIndex] in order.</summary>
internal sealed class RaftLogStore
{
    private readonly List<Entry> entries = [];

    public Snapshot Snapshot { get; private set; } = Snapshot.Empty;

    public ulong FirstIndex => Snapshot.Metadata.Index + 1;

    public ulong LastIndex => Snapshot.Metadata.Index + (ulong)entries.Count;

    public int Count => entries.Count;

    public Entry this[int position] => entries[position];

    public IReadOnlyList<Entry> Entries(ulong lo, ulong hi)
    {
        if (lo < FirstIndex || hi > LastIndex + 1 || lo > hi) throw new ArgumentOutOfRangeException(nameof(lo), $"entries [{lo}, {hi}) outside [{FirstIndex}, {LastIndex + 1})");
        return entries.GetRange((int)(lo - FirstIndex), (int)(hi - lo));
    }

    public ulong? Term(ulong index)
    {
        if (index == Snapshot.Metadata.Index) return Snapshot.Metadata.Term;
        if (index < FirstIndex || index > LastIndex) return null;
        return entries[(int)(index - FirstIndex)].Term;
    }

    /// <summary>Appends, first dropping any suffix from the first new index on; entries already compacted are skipped. Returns the position the log was cut at (for files), or -1.</summary>
    public int Append(IReadOnlyList<Entry> newEntries)
    {
        int cutAt = -1;
        foreach (Entry entry in newEntries)
        {
            if (entry.Index < FirstIndex) continue;
            if (entry.Index > LastIndex + 1) throw new InvalidOperationException($"log gap: appending index {entry.Index} after {LastIndex}");
            if (entry.Index <= LastIndex)
            {
                int position = (int)(entry.Index - FirstIndex);
                if (cutAt < 0 || position < cutAt) cutAt = position;
                entries.RemoveRange(position, entries.Count - position);
            }
            entries.Add(entry);
        }
        return cutAt;
    }

    /// <summary>Installs a snapshot sent by a leader: keeps the entries after it only if the log matches it at its index.</summary>
    public void ApplySnapshot(Snapshot snapshot)
    {
        ulong index = snapshot.Metadata.Index;
        if (index < Snapshot.Metadata.Index) throw new InvalidOperationException($"snapshot {index} older than stored {Snapshot.Metadata.Index}");
        bool matches = Term(index) == snapshot.Metadata.Term;
        if (matches) entries.RemoveRange(0, (int)(index - Snapshot.Metadata.Index));
        else entries.Clear();
        Snapshot = snapshot;
    }

    public void Compact(Snapshot snapshot)
    {
        ulong index = snapshot.Metadata.Index;
        if (index <= Snapshot.Metadata.Index) return;
        if (index > LastIndex) throw new InvalidOperationException($"compact to {index} beyond last index {LastIndex}");
        if (Term(index) != snapshot.Metadata.Term) throw new InvalidOperationException($"compact snapshot term {snapshot.Metadata.Term} differs from log term {Term(index)} at {index}");
        entries.RemoveRange(0, (int)(index - Snapshot.Metadata.Index));
        Snapshot = snapshot;
    }

    public void Replace(Snapshot snapshot, IEnumerable<Entry> newEntries)
    {
        Snapshot = snapshot;
        entries.Clear();
        entries.AddRange(newEntries);
    }
}
