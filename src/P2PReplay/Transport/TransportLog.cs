using Microsoft.Extensions.Logging;

namespace P2PReplay.Transport;

/// <summary>All transport log lines (source-generated).</summary>
internal static partial class TransportLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "Peer handshake with {Remote} refused: {Reason} ({Detail})")]
    public static partial void HandshakeRefused(ILogger logger, string remote, HandshakeFailure reason, string detail);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Peer connection with {NodeId} at {Remote} closed: {Reason} ({Detail})")]
    public static partial void ConnectionBroken(ILogger logger, string nodeId, string remote, FrameFailure reason, string detail);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Peer {NodeId} connected ({Direction}) at {Remote}")]
    public static partial void PeerConnected(ILogger logger, string nodeId, string direction, string remote);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Peer connection from {Remote} closed at once: {Pending} handshakes already pending")]
    public static partial void TooManyPendingHandshakes(ILogger logger, string remote, int pending);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "Peer {Address} unreachable: {Detail}; next attempt in {BackoffMs} ms")]
    public static partial void ConnectFailed(ILogger logger, string address, string detail, long backoffMs);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Debug, Message = "Dropped a {Kind} frame to {Address}: {Detail}")]
    public static partial void FrameDropped(ILogger logger, ChannelKind kind, string address, string detail);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Error, Message = "Handler for a {Kind} frame from {NodeId} failed")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, ChannelKind kind, string nodeId);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Warning, Message = "Peer listener on {EndPoint}: accept failed: {Detail}")]
    public static partial void AcceptFailed(ILogger logger, string endPoint, string detail);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Information, Message = "Peer listener on {EndPoint} started")]
    public static partial void ListenerStarted(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Debug, Message = "Peer connection with {NodeId} at {Remote} ended")]
    public static partial void ConnectionEnded(ILogger logger, string nodeId, string remote);
}
