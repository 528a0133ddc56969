using System.Buffers.Binary;
using System.IO.Hashing;

namespace P2PReplay.Consensus.Storage;

/// <summary>
/// Crash-safe <see cref="IRaftStorage"/> in one directory:
/// <c>hardstate</c> and <c>snapshot</c> are replaced atomically (temp file, flush to disk, rename);
/// <c>log</c> is append-only records [u32 payload length][u32 XxHash32(payload, seed length)][payload: term u64, index u64, type u8, data],
/// flushed to disk on every Save; a conflicting suffix is cut by truncating the file; compaction rewrites it.
/// Recovery drops a torn last record (crash mid-append) and refuses damage anywhere else.
/// Not done: fsync of the directory after a rename (needs P/Invoke), so a rename may be lost on power failure
/// (the previous hard state/snapshot/log then stays, which Raft tolerates only if the lost write was never acknowledged).
/// </summary>
public sealed class FileRaftStorage : IRaftStorage, IDisposable
{
    public const int MaxRecordBytes = RaftCodec.MaxEntryBytes + 17;
    private const int RecordHeader = 8;
    private readonly string directory;
    private readonly string logPath;
    private readonly RaftLogStore store = new();
    private readonly List<long> recordOffsets = [];
    private FileStream logFile;
    private HardState hardState;

    public FileRaftStorage(string directory)
    {
        this.directory = directory;
        Directory.CreateDirectory(directory);
        logPath = Path.Combine(directory, "log");
        hardState = ReadHardState();
        Snapshot snapshot = ReadSnapshot();
        List<Entry> entries = ReadLog();
        bool rewrite = false;
        // Reconcile with the snapshot: a crash between writing a snapshot and rewriting the log leaves older entries.
        if (entries.Count > 0 && entries[0].Index <= snapshot.Metadata.Index)
        {
            ulong first = entries[0].Index;
            ulong last = entries[^1].Index;
            bool matches = snapshot.Metadata.Index <= last && entries[(int)(snapshot.Metadata.Index - first)].Term == snapshot.Metadata.Term;
            entries = matches ? entries.GetRange((int)(snapshot.Metadata.Index - first + 1), (int)(last - snapshot.Metadata.Index)) : [];
            rewrite = true;
        }
        else if (entries.Count > 0 && entries[0].Index != snapshot.Metadata.Index + 1)
        {
            throw new InvalidDataException($"{logPath}: log starts at index {entries[0].Index} but the snapshot ends at {snapshot.Metadata.Index}");
        }
        store.Replace(snapshot, entries);
        if (rewrite) WriteLogFile();
        logFile = OpenLog();
        IndexOffsets();
    }

    public string DirectoryPath => directory;

    public (HardState HardState, ConfState ConfState) InitialState() => (hardState, store.Snapshot.Metadata.ConfState);

    public IReadOnlyList<Entry> Entries(ulong lo, ulong hi) => store.Entries(lo, hi);

    public ulong? Term(ulong index) => store.Term(index);

    public ulong FirstIndex => store.FirstIndex;

    public ulong LastIndex => store.LastIndex;

    public Snapshot Snapshot => store.Snapshot;

    public void Save(HardState? hardState, IReadOnlyList<Entry> entries, Snapshot? snapshot)
    {
        if (snapshot is not null)
        {
            WriteAtomically("snapshot", EncodeSnapshot(snapshot));
            store.ApplySnapshot(snapshot);
            RewriteLog();
        }
        if (entries.Count > 0)
        {
            int before = store.Count;
            int cut = store.Append(entries);
            int start = before;
            if (cut >= 0)
            {
                logFile.SetLength(recordOffsets[cut]);
                recordOffsets.RemoveRange(cut, recordOffsets.Count - cut);
                start = cut;
            }
            AppendRecords(start);
        }
        if (hardState is { } hs && hs != this.hardState)
        {
            var bytes = new byte[24];
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, hs.Term);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), hs.Vote);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(16), hs.Commit);
            WriteAtomically("hardstate", bytes);
            this.hardState = hs;
        }
    }

    public void Compact(Snapshot snapshot)
    {
        if (snapshot.Metadata.Index <= store.Snapshot.Metadata.Index) return;
        WriteAtomically("snapshot", EncodeSnapshot(snapshot));
        store.Compact(snapshot);
        RewriteLog();
    }

    public void Dispose() => logFile.Dispose();

    private FileStream OpenLog()
    {
        var stream = new FileStream(logPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        stream.Seek(0, SeekOrigin.End);
        return stream;
    }

    private void AppendRecords(int fromPosition)
    {
        using var buffer = new MemoryStream();
        long offset = logFile.Length;
        for (int i = fromPosition; i < store.Count; i++)
        {
            recordOffsets.Add(offset + buffer.Length);
            WriteRecord(buffer, store[i]);
        }
        logFile.Seek(0, SeekOrigin.End);
        logFile.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
        logFile.Flush(flushToDisk: true);
    }

    private static void WriteRecord(Stream output, Entry entry)
    {
        int length = 17 + entry.Data.Length;
        var record = new byte[RecordHeader + length];
        Span<byte> payload = record.AsSpan(RecordHeader);
        BinaryPrimitives.WriteUInt64LittleEndian(payload, entry.Term);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[8..], entry.Index);
        payload[16] = (byte)entry.Type;
        entry.Data.CopyTo(payload[17..]);
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(4), XxHash32.HashToUInt32(payload, length));
        output.Write(record);
    }

    /// <summary>Replaces the log file by the entries in memory (temp file, flush, rename).</summary>
    private void RewriteLog()
    {
        logFile.Dispose();
        WriteLogFile();
        logFile = OpenLog();
        IndexOffsets();
    }

    private void WriteLogFile()
    {
        string temp = logPath + ".tmp";
        using (var output = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            for (int i = 0; i < store.Count; i++) WriteRecord(output, store[i]);
            output.Flush(flushToDisk: true);
        }
        File.Move(temp, logPath, overwrite: true);
    }

    private void IndexOffsets()
    {
        recordOffsets.Clear();
        long offset = 0;
        for (int i = 0; i < store.Count; i++)
        {
            recordOffsets.Add(offset);
            offset += RecordHeader + 17 + store[i].Data.Length;
        }
    }

    private List<Entry> ReadLog()
    {
        List<Entry> entries = [];
        if (!File.Exists(logPath)) return entries;
        byte[] bytes = File.ReadAllBytes(logPath);
        long offset = 0;
        while (offset < bytes.Length)
        {
            long remaining = bytes.Length - offset;
            if (remaining < RecordHeader)
            {
                TruncateTornTail(offset);
                break;
            }
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan((int)offset));
            uint hash = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan((int)offset + 4));
            if (length < 17 || length > MaxRecordBytes) throw Corrupt(offset, $"record length {length}");
            if (length > remaining - RecordHeader)
            {
                // The last append did not finish: everything before it is intact. Unless an intact record follows,
                // in which case this length field itself is damaged.
                if (ValidRecordFollows(bytes, offset + RecordHeader)) throw Corrupt(offset, $"record length {length} runs past the end but intact records follow");
                TruncateTornTail(offset);
                break;
            }
            ReadOnlySpan<byte> payload = bytes.AsSpan((int)offset + RecordHeader, (int)length);
            bool last = offset + RecordHeader + length == bytes.Length;
            if (XxHash32.HashToUInt32(payload, (int)length) != hash)
            {
                if (!last) throw Corrupt(offset, "checksum mismatch");
                TruncateTornTail(offset);
                break;
            }
            ulong term = BinaryPrimitives.ReadUInt64LittleEndian(payload);
            ulong index = BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]);
            byte type = payload[16];
            if (type > (byte)EntryType.ConfChange) throw Corrupt(offset, $"entry type {type}");
            if (entries.Count > 0 && index != entries[^1].Index + 1) throw Corrupt(offset, $"index {index} after {entries[^1].Index}");
            if (index == 0) throw Corrupt(offset, "index 0");
            entries.Add(new Entry(term, index, (EntryType)type, payload[17..].ToArray()));
            offset += RecordHeader + length;
        }
        return entries;
    }

    private static bool ValidRecordFollows(byte[] bytes, long from)
    {
        for (long p = from; p + RecordHeader + 17 <= bytes.Length; p++)
        {
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan((int)p));
            if (length < 17 || length > bytes.Length - p - RecordHeader) continue;
            uint hash = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan((int)p + 4));
            if (XxHash32.HashToUInt32(bytes.AsSpan((int)p + RecordHeader, (int)length), (int)length) == hash) return true;
        }
        return false;
    }

    private void TruncateTornTail(long offset)
    {
        using var stream = new FileStream(logPath, FileMode.Open, FileAccess.Write);
        stream.SetLength(offset);
        stream.Flush(flushToDisk: true);
    }

    private InvalidDataException Corrupt(long offset, string what) => new($"{logPath}: corrupt record at offset {offset} ({what}); refusing to start");

    private void WriteAtomically(string name, byte[] payload)
    {
        string path = Path.Combine(directory, name);
        string temp = path + ".tmp";
        using (var output = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            Span<byte> header = stackalloc byte[RecordHeader];
            BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)payload.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(header[4..], XxHash32.HashToUInt32(payload, payload.Length));
            output.Write(header);
            output.Write(payload);
            output.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    private byte[]? ReadAtomicFile(string name)
    {
        string path = Path.Combine(directory, name);
        if (!File.Exists(path)) return null;
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < RecordHeader) throw new InvalidDataException($"{path}: {bytes.Length} bytes, too short");
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        uint hash = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4));
        if (length != bytes.Length - RecordHeader) throw new InvalidDataException($"{path}: length {length} but {bytes.Length - RecordHeader} payload bytes");
        byte[] payload = bytes[RecordHeader..];
        if (XxHash32.HashToUInt32(payload, (int)length) != hash) throw new InvalidDataException($"{path}: checksum mismatch");
        return payload;
    }

    private HardState ReadHardState()
    {
        byte[]? payload = ReadAtomicFile("hardstate");
        if (payload is null) return default;
        if (payload.Length != 24) throw new InvalidDataException($"{Path.Combine(directory, "hardstate")}: {payload.Length} bytes, expected 24");
        return new HardState(BinaryPrimitives.ReadUInt64LittleEndian(payload), BinaryPrimitives.ReadUInt64LittleEndian(payload.AsSpan(8)), BinaryPrimitives.ReadUInt64LittleEndian(payload.AsSpan(16)));
    }

    private static byte[] EncodeSnapshot(Snapshot snapshot)
    {
        // Reuse the wire codec's strict snapshot form by wrapping it in a message.
        return RaftCodec.Encode(new Message { Type = MessageType.InstallSnapshot, From = 1, To = 1, Term = snapshot.Metadata.Term, Snapshot = snapshot });
    }

    private Snapshot ReadSnapshot()
    {
        byte[]? payload = ReadAtomicFile("snapshot");
        if (payload is null) return Snapshot.Empty;
        try
        {
            return RaftCodec.Decode(payload).Snapshot!;
        }
        catch (RaftFormatException e)
        {
            throw new InvalidDataException($"{Path.Combine(directory, "snapshot")}: {e.Message}", e);
        }
    }
}
