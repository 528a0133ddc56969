using System.Buffers.Binary;

namespace P2PReplay.Consensus;

/// <summary>What an entry carries: application data, or an encoded <see cref="ConfChange"/>.</summary>
public enum EntryType : byte
{
    Normal = 0,
    ConfChange = 1,
}

/// <summary>One log entry. Data is never null (empty for the leader's no-op entry).</summary>
public sealed record Entry(ulong Term, ulong Index, EntryType Type, byte[] Data)
{
    public static Entry Create(ulong term, ulong index, byte[]? data = null, EntryType type = EntryType.Normal) => new(term, index, type, data ?? []);
}

/// <summary>What must survive a crash besides the log: the current term, the vote cast in it, and the commit index.</summary>
public readonly record struct HardState(ulong Term, ulong Vote, ulong Commit)
{
    public bool IsEmpty => Term == 0 && Vote == 0 && Commit == 0;
}

/// <summary>The membership: voters decide elections and commits; learners only receive the log.</summary>
public sealed record ConfState(IReadOnlyList<ulong> Voters, IReadOnlyList<ulong> Learners)
{
    public static ConfState Empty { get; } = new([], []);

    public bool IsVoter(ulong id) => Voters.Contains(id);

    public bool IsLearner(ulong id) => Learners.Contains(id);

    public bool Contains(ulong id) => IsVoter(id) || IsLearner(id);

    /// <summary>Membership after one single-server change (no-op changes return an equal state).</summary>
    public ConfState Apply(ConfChange change)
    {
        var voters = new SortedSet<ulong>(Voters);
        var learners = new SortedSet<ulong>(Learners);
        switch (change.Type)
        {
            case ConfChangeType.AddVoter:
                learners.Remove(change.NodeId);
                voters.Add(change.NodeId);
                break;
            case ConfChangeType.PromoteLearner:
                if (learners.Remove(change.NodeId)) voters.Add(change.NodeId);
                break;
            case ConfChangeType.AddLearner:
                // Adding a voter as a learner demotes it: a single-server removal from the voters.
                voters.Remove(change.NodeId);
                learners.Add(change.NodeId);
                break;
            case ConfChangeType.Remove:
                voters.Remove(change.NodeId);
                learners.Remove(change.NodeId);
                break;
        }
        return new ConfState([.. voters], [.. learners]);
    }

    public bool Equals(ConfState? other) => other is not null && Voters.SequenceEqual(other.Voters) && Learners.SequenceEqual(other.Learners);

    public override int GetHashCode() => HashCode.Combine(Voters.Count, Learners.Count, Voters.FirstOrDefault());

    public override string ToString() => $"voters [{string.Join(',', Voters)}] learners [{string.Join(',', Learners)}]";
}

public enum ConfChangeType : byte
{
    AddVoter = 0,
    AddLearner = 1,
    PromoteLearner = 2,
    Remove = 3,
}

/// <summary>One single-server membership change, stored in a <see cref="EntryType.ConfChange"/> entry.</summary>
public readonly record struct ConfChange(ConfChangeType Type, ulong NodeId)
{
    public const int EncodedSize = 9;

    public byte[] Encode()
    {
        var bytes = new byte[EncodedSize];
        bytes[0] = (byte)Type;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(1), NodeId);
        return bytes;
    }

    public static ConfChange Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != EncodedSize || bytes[0] > (byte)ConfChangeType.Remove) throw new RaftFormatException($"conf change of {bytes.Length} bytes, type {(bytes.Length > 0 ? bytes[0] : -1)}");
        return new ConfChange((ConfChangeType)bytes[0], BinaryPrimitives.ReadUInt64LittleEndian(bytes[1..]));
    }
}

public sealed record SnapshotMetadata(ulong Index, ulong Term, ConfState ConfState);

/// <summary>The application's state at Metadata.Index, plus the membership at that index.</summary>
public sealed record Snapshot(SnapshotMetadata Metadata, byte[] Data)
{
    public static Snapshot Empty { get; } = new(new SnapshotMetadata(0, 0, ConfState.Empty), []);

    public bool IsEmpty => Metadata.Index == 0 && Metadata.Term == 0 && Metadata.ConfState.Voters.Count == 0 && Metadata.ConfState.Learners.Count == 0;
}

public enum MessageType : byte
{
    PreVote = 0,
    PreVoteResponse = 1,
    Vote = 2,
    VoteResponse = 3,
    Append = 4,
    AppendResponse = 5,
    Heartbeat = 6,
    HeartbeatResponse = 7,
    InstallSnapshot = 8,
    TimeoutNow = 9,
}

/// <summary>
/// A message between peers. Append: Index/LogTerm name the entry preceding Entries. AppendResponse: Index is the
/// follower's last matching index, or on Reject the rejected Index with RejectHint/LogTerm for fast backtracking.
/// LeaderTransfer marks a vote that may override the leader lease (requested by the old leader).
/// Context ties a heartbeat round to a ReadIndex request.
/// </summary>
public sealed record Message
{
    public required MessageType Type { get; init; }
    public required ulong From { get; init; }
    public required ulong To { get; init; }
    public ulong Term { get; init; }
    public ulong LogTerm { get; init; }
    public ulong Index { get; init; }
    public IReadOnlyList<Entry> Entries { get; init; } = [];
    public ulong Commit { get; init; }
    public bool Reject { get; init; }
    public ulong RejectHint { get; init; }
    public bool LeaderTransfer { get; init; }

    /// <summary>Heartbeat/HeartbeatResponse: the read request a heartbeat round confirms leadership for (0: none).</summary>
    public ulong Context { get; init; }
    public Snapshot? Snapshot { get; init; }

    public override string ToString() => $"{Type} {From}->{To} t{Term} lt{LogTerm} i{Index} c{Commit} n{Entries.Count}{(Reject ? $" reject hint {RejectHint}" : "")}{(Snapshot is null ? "" : $" snap {Snapshot.Metadata.Index}")}";
}

public enum RaftState
{
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// <summary>Thrown for malformed wire bytes or malformed messages.</summary>
public sealed class RaftFormatException : Exception
{
    public RaftFormatException() { }

    public RaftFormatException(string message) : base(message) { }

    public RaftFormatException(string message, Exception inner) : base(message, inner) { }
}
