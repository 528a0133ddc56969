namespace P2PReplay.Transport;

/// <summary>Why a handshake was refused; each reason is logged and counted separately.</summary>
internal enum HandshakeFailure
{
    Malformed = 1,
    VersionMismatch = 2,

    /// <summary>A MAC did not verify: the peer does not hold our cluster secret.</summary>
    WrongClusterSecret = 3,
    BadSignature = 4,
    Replayed = 5,
    Stale = 6,
    Timeout = 7,

    /// <summary>The peer closed or reset the connection mid-handshake.</summary>
    ConnectionClosed = 8,

    /// <summary>The initiator pinned a NodeId and the responder is someone else.</summary>
    UnexpectedPeer = 9,
}

/// <summary>A refused handshake. RefusedByPeer is true when the other side told us its reason.</summary>
internal sealed class HandshakeException(HandshakeFailure reason, string message, bool refusedByPeer = false)
    : Exception(message)
{
    public HandshakeFailure Reason { get; } = reason;

    public bool RefusedByPeer { get; } = refusedByPeer;
}
