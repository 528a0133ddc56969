namespace P2PReplay.Discovery.Gossip;

/// <summary>One message inside a compound gossip packet.</summary>
public abstract record GossipMessage;

/// <summary>Direct probe; TargetNodeId guards against acking for a node that reused the address.</summary>
public sealed record PingMessage(uint Sequence, string TargetNodeId) : GossipMessage;

/// <summary>Asks the receiver to probe Target on the sender's behalf (SWIM ping-req); WantNack per Lifeguard.</summary>
public sealed record IndirectPingMessage(uint Sequence, string TargetNodeId, string TargetAddress, bool WantNack) : GossipMessage;

public sealed record AckMessage(uint Sequence) : GossipMessage;

/// <summary>An indirect prober tells the requester it got no ack: the requester's own link is fine (Lifeguard).</summary>
public sealed record NackMessage(uint Sequence) : GossipMessage;

public sealed record AliveMessage(ulong Incarnation, MemberInfo Member) : GossipMessage;

public sealed record SuspectMessage(ulong Incarnation, string NodeId, string FromNodeId) : GossipMessage;

public sealed record DeadMessage(ulong Incarnation, string NodeId, string FromNodeId) : GossipMessage;

public sealed record LeftMessage(ulong Incarnation, string NodeId) : GossipMessage;

public readonly record struct PushPullEntry(MemberInfo Member, MemberStatus Status, ulong Incarnation);

/// <summary>Full-state exchange: a request is answered by a reply carrying the receiver's state.</summary>
public sealed record PushPullMessage(bool IsReply, bool IsJoin, IReadOnlyList<PushPullEntry> Entries) : GossipMessage;

/// <summary>A decoded packet: who sent it (their advertised address, where replies go) and its messages.</summary>
public sealed record GossipPacket(string SenderNodeId, string SenderAddress, IReadOnlyList<GossipMessage> Messages);
