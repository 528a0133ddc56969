namespace P2PReplay.Transport;

/// <summary>Which subsystem a frame is for. Values are wire format; add new kinds, never renumber.</summary>
internal enum ChannelKind : byte
{
    Gossip = 1,
    Raft = 2,
    VmLog = 3,
    Control = 4,
    /// <summary>Client connections of exposed guest ports, between front ends and a VM's primary.</summary>
    VmNet = 5,
    /// <summary>VM images moved between daemons by their content hash.</summary>
    Image = 6,
}

/// <summary>Frame flag bits (plaintext byte 1). Unknown bits are refused so they can gain meaning later.</summary>
[Flags]
internal enum FrameFlags : byte
{
    None = 0,
    Compressed = 1,
}

/// <summary>One received frame.</summary>
internal sealed record TransportFrame(ChannelKind Kind, ReadOnlyMemory<byte> Payload);

/// <summary>Why a connection was closed after the handshake.</summary>
internal enum FrameFailure
{
    Oversized = 1,

    /// <summary>AEAD tag did not verify: tampered, replayed, reordered, dropped or duplicated frame, or wrong key.</summary>
    AuthenticationFailed = 2,
    UnknownFlags = 3,
    DecompressionFailed = 4,
    DecompressionLimit = 5,
    Truncated = 6,
    Timeout = 7,
    Malformed = 8,
    SendFailed = 9,
}

/// <summary>The connection is unusable; it has been closed and the reason logged.</summary>
internal sealed class FrameException(FrameFailure reason, string message) : IOException(message)
{
    public FrameFailure Reason { get; } = reason;
}
