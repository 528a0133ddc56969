namespace P2PReplay.Discovery.Gossip;

/// <summary>What a node advertises about itself. Address is where peers reach it ("host:port").</summary>
public sealed record MemberInfo(string NodeId, string Address, string Site, int Cores, long MemoryBytes, string State);

/// <summary>SWIM member status as seen by one node.</summary>
public enum MemberStatus : byte
{
    Alive = 0,
    Suspect = 1,
    Dead = 2,
    Left = 3,
}

/// <summary>One member as the local node sees it. RoundTripMs is the smoothed ping→ack time, null until measured.</summary>
public sealed record MemberSnapshot(MemberInfo Info, MemberStatus Status, ulong Incarnation, long LastHeardMs, double? RoundTripMs);

public enum GossipEventKind : byte
{
    /// <summary>A member became known, or came back after being dead or gone.</summary>
    Joined,
    /// <summary>An alive member changed its metadata.</summary>
    Updated,
    Suspect,
    /// <summary>A suspected member refuted the suspicion.</summary>
    Alive,
    Dead,
    Left,
}

public sealed record GossipEvent(GossipEventKind Kind, MemberSnapshot Member, long AtMs);

/// <summary>A packet the daemon must deliver to Destination ("host:port").</summary>
public readonly record struct OutgoingPacket(string Destination, byte[] Payload);

/// <summary>Any malformed gossip packet; the only exception GossipCodec.Decode throws.</summary>
public sealed class GossipFormatException : Exception
{
    public GossipFormatException() { }
    public GossipFormatException(string message) : base(message) { }
    public GossipFormatException(string message, Exception inner) : base(message, inner) { }
}
