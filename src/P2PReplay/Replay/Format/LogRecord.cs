namespace P2PReplay.Replay.Format;

/// <summary>One record of the log. Chunk is the chunk sequence number, Offset that chunk's byte offset in the stream (for messages).</summary>
public readonly record struct LogRecord(byte Kind, ReadOnlyMemory<byte> Payload, int Chunk, long Offset);

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
