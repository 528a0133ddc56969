namespace P2PReplay.Replay.Format;

/// <summary>
/// One record of the log. Chunk is the chunk sequence number, Offset that chunk's byte offset in the stream, Index the
/// record's place in its chunk (0-based): (Offset, Chunk, Index) is where a replay can resume (VM snapshots).
/// </summary>
public readonly record struct LogRecord(byte Kind, ReadOnlyMemory<byte> Payload, int Chunk, long Offset, int Index = 0);

/// <summary>
/// A place in a log between two records: the next record is number <paramref name="Index"/> of the chunk with sequence
/// number <paramref name="Chunk"/>, which starts at byte <paramref name="Offset"/> of the log stream. A reader of the
/// log's tail starts at that byte (a chunk boundary), so everything before <paramref name="Offset"/> may be dropped.
/// </summary>
public readonly record struct LogPosition(int Chunk, long Offset, int Index);

/// <summary>Why a <see cref="LogReader"/> stopped returning records.</summary>
public enum LogEnd
{
    /// <summary>Still reading: TryRead has not returned false yet.</summary>
    None,

    /// <summary>The final chunk was read and nothing follows it.</summary>
    Complete,

    /// <summary>The stream ended before a final chunk (a recording killed mid-run); the records before the cut are good.</summary>
    Truncated,
}
