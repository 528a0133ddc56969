namespace P2PReplay.Consensus;

public sealed record RaftConfig
{
    public required ulong Id { get; init; }

    /// <summary>Base election timeout E in ticks; each follower waits a random timeout in [E, 2E).</summary>
    public int ElectionTicks { get; init; } = 10;

    public int HeartbeatTicks { get; init; } = 1;

    /// <summary>Ask for pre-votes first, so a node rejoining after a partition does not bump the term.</summary>
    public bool PreVote { get; init; } = true;

    /// <summary>Leader steps down without a quorum in an election timeout; followers with a live leader ignore votes.</summary>
    public bool CheckQuorum { get; init; } = true;

    public int MaxInflightMessages { get; init; } = 64;

    public int MaxEntriesPerMessage { get; init; } = 64;

    /// <summary>Soft cap on entry bytes per append (a single larger entry still goes alone).</summary>
    public int MaxBytesPerMessage { get; init; } = 1 << 20;

    public int MaxCommittedEntriesPerReady { get; init; } = 1024;

    /// <summary>For a brand-new cluster: the initial voters, identical on every founding node. Ignored when storage is not empty; empty for a node joining an existing cluster.</summary>
    public IReadOnlyList<ulong> BootstrapVoters { get; init; } = [];

    /// <summary>The index the application's state machine already reflects (defaults to the snapshot index).</summary>
    public ulong Applied { get; init; }

    internal void Validate()
    {
        if (Id == 0) throw new ArgumentException("node id 0 is reserved for 'none'");
        if (HeartbeatTicks <= 0 || ElectionTicks <= HeartbeatTicks) throw new ArgumentException("need 0 < HeartbeatTicks < ElectionTicks");
        if (MaxInflightMessages <= 0 || MaxEntriesPerMessage <= 0 || MaxCommittedEntriesPerReady <= 0 || MaxBytesPerMessage <= 0) throw new ArgumentException("limits must be positive");
        if (MaxEntriesPerMessage > RaftCodec.MaxEntries) throw new ArgumentException($"MaxEntriesPerMessage above the wire limit {RaftCodec.MaxEntries}");
    }
}

/// <summary>
/// What the driver loop must do, in order: persist HardState/Entries/Snapshot (<see cref="IRaftStorage.Save"/>),
/// then send Messages, apply Snapshot then CommittedEntries to the state machine, then call <see cref="RaftNode.Advance"/>.
/// ConfChange entries among CommittedEntries are already in effect inside the node (informational).
/// ReadStates: confirmed linearizable reads; serve each once Applied ≥ its Index.
/// </summary>
public sealed record Ready(HardState? HardState, IReadOnlyList<Entry> Entries, Snapshot? Snapshot, IReadOnlyList<Entry> CommittedEntries, IReadOnlyList<Message> Messages, IReadOnlyList<ReadState> ReadStates);

/// <summary>A read request confirmed by a quorum: the state machine answers it linearizably once it has applied Index.</summary>
public readonly record struct ReadState(ulong RequestId, ulong Index);

public enum ProposeStatus
{
    Accepted,
    NotLeader,
    TransferInProgress,
    ConfChangePending,

    /// <summary>The data exceeds what the wire format carries in one entry (<see cref="RaftCodec.MaxEntryBytes"/>).</summary>
    TooLarge,
}

/// <summary>Outcome of a proposal: where the entry went, or whom to ask instead (LeaderId 0: unknown).</summary>
public readonly record struct ProposeResult(ProposeStatus Status, ulong Index, ulong Term, ulong LeaderId)
{
    public bool Accepted => Status == ProposeStatus.Accepted;
}

/// <summary>A point-in-time view of a node (Progress is empty unless it leads).</summary>
public sealed record RaftStatus(
    ulong Id,
    RaftState State,
    ulong Term,
    ulong Vote,
    ulong LeaderId,
    ulong Commit,
    ulong Applied,
    ulong FirstIndex,
    ulong LastIndex,
    ConfState ConfState,
    ulong LeadTransferee,
    IReadOnlyDictionary<ulong, PeerProgress> Progress);
