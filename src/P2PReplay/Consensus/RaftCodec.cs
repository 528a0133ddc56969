using System.Buffers.Binary;

namespace P2PReplay.Consensus;

/// <summary>
/// Binary wire form of <see cref="Message"/> (little-endian):
/// version u8, type u8, flags u8 (1 reject, 2 leader transfer, 4 snapshot follows), from, to, term, logTerm,
/// index, commit, rejectHint, context (u64 each), entry count u32, entries {term u64, index u64, type u8, length u32, data},
/// then if flagged a snapshot {index u64, term u64, voters u32 + u64s, learners u32 + u64s, length u32, data}.
/// Decoding is strict: any inconsistency throws <see cref="RaftFormatException"/>.
/// </summary>
public static class RaftCodec
{
    public const byte Version = 1;
    public const int MaxEntries = 1 << 16;
    public const int MaxEntryBytes = 64 << 20;
    public const int MaxSnapshotBytes = 1 << 30;
    public const int MaxMembers = 4096;
    private const int HeaderSize = 3 + 8 * 8 + 4;
    private const int MinEntrySize = 8 + 8 + 1 + 4;
    private const byte FlagReject = 1, FlagLeaderTransfer = 2, FlagSnapshot = 4;

    public static byte[] Encode(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        int size = HeaderSize;
        foreach (Entry entry in message.Entries) size += MinEntrySize + entry.Data.Length;
        if (message.Snapshot is { } s) size += 8 + 8 + 4 + 8 * s.Metadata.ConfState.Voters.Count + 4 + 8 * s.Metadata.ConfState.Learners.Count + 4 + s.Data.Length;
        var buffer = new byte[size];
        var writer = new Writer(buffer);
        writer.U8(Version);
        writer.U8((byte)message.Type);
        writer.U8((byte)((message.Reject ? FlagReject : 0) | (message.LeaderTransfer ? FlagLeaderTransfer : 0) | (message.Snapshot is null ? 0 : FlagSnapshot)));
        writer.U64(message.From);
        writer.U64(message.To);
        writer.U64(message.Term);
        writer.U64(message.LogTerm);
        writer.U64(message.Index);
        writer.U64(message.Commit);
        writer.U64(message.RejectHint);
        writer.U64(message.Context);
        writer.U32((uint)message.Entries.Count);
        foreach (Entry entry in message.Entries)
        {
            writer.U64(entry.Term);
            writer.U64(entry.Index);
            writer.U8((byte)entry.Type);
            writer.Bytes(entry.Data);
        }
        if (message.Snapshot is { } snapshot)
        {
            writer.U64(snapshot.Metadata.Index);
            writer.U64(snapshot.Metadata.Term);
            writer.Ids(snapshot.Metadata.ConfState.Voters);
            writer.Ids(snapshot.Metadata.ConfState.Learners);
            writer.Bytes(snapshot.Data);
        }
        return buffer;
    }

    public static Message Decode(ReadOnlySpan<byte> bytes)
    {
        var reader = new Reader(bytes);
        byte version = reader.U8();
        if (version != Version) throw new RaftFormatException($"unknown message version {version}");
        byte rawType = reader.U8();
        if (rawType > (byte)MessageType.TimeoutNow) throw new RaftFormatException($"unknown message type {rawType}");
        var type = (MessageType)rawType;
        byte flags = reader.U8();
        if ((flags & ~(FlagReject | FlagLeaderTransfer | FlagSnapshot)) != 0) throw new RaftFormatException($"unknown flags 0x{flags:x2}");
        ulong from = reader.U64(), to = reader.U64(), term = reader.U64(), logTerm = reader.U64(), index = reader.U64(), commit = reader.U64(), rejectHint = reader.U64(), context = reader.U64();
        if (context != 0 && type is not (MessageType.Heartbeat or MessageType.HeartbeatResponse)) throw new RaftFormatException($"{type} carries a read context");
        if (from == 0 || to == 0) throw new RaftFormatException("node id 0");
        int count = reader.Count(MaxEntries, MinEntrySize, "entries");
        if (count > 0 && type != MessageType.Append) throw new RaftFormatException($"{type} carries entries");
        var entries = new Entry[count];
        for (int i = 0; i < count; i++)
        {
            ulong entryTerm = reader.U64();
            ulong entryIndex = reader.U64();
            byte entryType = reader.U8();
            if (entryType > (byte)EntryType.ConfChange) throw new RaftFormatException($"unknown entry type {entryType}");
            byte[] data = reader.Bytes(MaxEntryBytes);
            // The core relies on these: consecutive indexes after Index, terms non-decreasing and not above the message's.
            if (entryIndex != index + 1 + (ulong)i) throw new RaftFormatException($"entry {i} has index {entryIndex}, expected {index + 1 + (ulong)i}");
            if (entryTerm > term || (i > 0 && entryTerm < entries[i - 1].Term) || (i == 0 && entryTerm < logTerm)) throw new RaftFormatException($"entry {entryIndex} has out-of-order term {entryTerm}");
            if (entryType == (byte)EntryType.ConfChange) ConfChange.Decode(data);
            entries[i] = new Entry(entryTerm, entryIndex, (EntryType)entryType, data);
        }
        Snapshot? snapshot = null;
        if ((flags & FlagSnapshot) != 0)
        {
            if (type != MessageType.InstallSnapshot) throw new RaftFormatException($"{type} carries a snapshot");
            ulong snapshotIndex = reader.U64();
            ulong snapshotTerm = reader.U64();
            ulong[] voters = reader.Ids(MaxMembers);
            ulong[] learners = reader.Ids(MaxMembers);
            if (voters.Intersect(learners).Any()) throw new RaftFormatException("a node is both voter and learner");
            byte[] data = reader.Bytes(MaxSnapshotBytes);
            if (snapshotTerm > term) throw new RaftFormatException($"snapshot term {snapshotTerm} above message term {term}");
            snapshot = new Snapshot(new SnapshotMetadata(snapshotIndex, snapshotTerm, new ConfState(voters, learners)), data);
        }
        else if (type == MessageType.InstallSnapshot)
        {
            throw new RaftFormatException("InstallSnapshot without a snapshot");
        }
        if (reader.Remaining != 0) throw new RaftFormatException($"{reader.Remaining} trailing bytes");
        return new Message
        {
            Type = type,
            From = from,
            To = to,
            Term = term,
            LogTerm = logTerm,
            Index = index,
            Commit = commit,
            RejectHint = rejectHint,
            Reject = (flags & FlagReject) != 0,
            LeaderTransfer = (flags & FlagLeaderTransfer) != 0,
            Context = context,
            Entries = entries,
            Snapshot = snapshot,
        };
    }

    private ref struct Writer(Span<byte> buffer)
    {
        private readonly Span<byte> buffer = buffer;
        private int position;

        public void U8(byte value) => buffer[position++] = value;

        public void U32(uint value)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(buffer[position..], value);
            position += 4;
        }

        public void U64(ulong value)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(buffer[position..], value);
            position += 8;
        }

        public void Bytes(byte[] data)
        {
            U32((uint)data.Length);
            data.CopyTo(buffer[position..]);
            position += data.Length;
        }

        public void Ids(IReadOnlyList<ulong> ids)
        {
            U32((uint)ids.Count);
            foreach (ulong id in ids) U64(id);
        }
    }

    private ref struct Reader(ReadOnlySpan<byte> bytes)
    {
        private readonly ReadOnlySpan<byte> bytes = bytes;
        private int position;

        public readonly int Remaining => bytes.Length - position;

        private void Need(int count)
        {
            if (Remaining < count) throw new RaftFormatException($"truncated: need {count} bytes at offset {position}, have {Remaining}");
        }

        public byte U8()
        {
            Need(1);
            return bytes[position++];
        }

        public uint U32()
        {
            Need(4);
            uint value = BinaryPrimitives.ReadUInt32LittleEndian(bytes[position..]);
            position += 4;
            return value;
        }

        public ulong U64()
        {
            Need(8);
            ulong value = BinaryPrimitives.ReadUInt64LittleEndian(bytes[position..]);
            position += 8;
            return value;
        }

        /// <summary>A count checked against its limit and against the bytes left (each item takes at least minSize).</summary>
        public int Count(int max, int minSize, string what)
        {
            uint count = U32();
            if (count > (uint)max) throw new RaftFormatException($"{count} {what} exceed the limit {max}");
            if ((long)count * minSize > Remaining) throw new RaftFormatException($"{count} {what} cannot fit in {Remaining} bytes");
            return (int)count;
        }

        public byte[] Bytes(int max)
        {
            int length = Count(max, 1, "bytes");
            byte[] data = bytes.Slice(position, length).ToArray();
            position += length;
            return data;
        }

        public ulong[] Ids(int max)
        {
            int count = Count(max, 8, "members");
            var ids = new ulong[count];
            for (int i = 0; i < count; i++)
            {
                ids[i] = U64();
                if (ids[i] == 0 || (i > 0 && ids[i] <= ids[i - 1])) throw new RaftFormatException("member ids must be non-zero and strictly increasing");
            }
            return ids;
        }
    }
}
