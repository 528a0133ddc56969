namespace P2PReplay.Replay.Format;

/// <summary>The input is not a readable p2preplay log (wrong magic, unsupported version, too short for a header).</summary>
public class LogFormatException : Exception
{
    public LogFormatException(string message) : base(message) { }

    public LogFormatException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>A chunk of the log failed validation; no record of that chunk was returned.</summary>
public sealed class LogCorruptException : LogFormatException
{
    public LogCorruptException(int chunk, long offset, string reason, Exception? inner = null)
        : base($"log chunk {chunk} at byte {offset} is corrupt: {reason}", inner)
    {
        Chunk = chunk;
        Offset = offset;
        Reason = reason;
    }

    /// <summary>Sequence number the chunk should have had.</summary>
    public int Chunk { get; }

    /// <summary>Byte offset of the chunk in the stream.</summary>
    public long Offset { get; }

    public string Reason { get; }
}
