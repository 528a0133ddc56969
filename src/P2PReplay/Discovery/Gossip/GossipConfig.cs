namespace P2PReplay.Discovery.Gossip;

/// <summary>
/// Timing and size knobs. The defaults target small clusters (≤20 nodes) on LAN/metro links: a dead member is
/// marked dead by everyone in about 1–2 s even at 10% packet loss (memberlist's LAN defaults need ≥4 s), at the
/// cost of more probe traffic (each node sends a ping every 200 ms). Measured by bench/gossip.
/// </summary>
public sealed record GossipConfig
{
    /// <summary>Each node probes one member per interval (scaled up by the local health score).</summary>
    public int ProbeIntervalMs { get; init; } = 200;
    /// <summary>How long to wait for a direct ack before asking others to probe indirectly.</summary>
    public int ProbeTimeoutMs { get; init; } = 100;
    /// <summary>How many members are asked to probe indirectly (SWIM's k).</summary>
    public int IndirectProbeCount { get; init; } = 3;
    /// <summary>Base suspicion timeout = multiplier × max(1, log10 n) × probe interval, at least SuspicionMinTimeoutMs.</summary>
    public int SuspicionMultiplier { get; init; } = 2;
    public int SuspicionMinTimeoutMs { get; init; } = 500;
    /// <summary>A fresh suspicion waits this long; independent confirmations shrink it down to the minimum (Lifeguard).</summary>
    public int SuspicionMaxTimeoutMs { get; init; } = 1500;
    /// <summary>How many independent confirmations bring the suspicion timeout down to its minimum.</summary>
    public int SuspicionConfirmations { get; init; } = 3;
    /// <summary>Each broadcast is piggybacked multiplier × ceil(log10(n + 1)) times.</summary>
    public int RetransmitMultiplier { get; init; } = 4;
    /// <summary>Pending broadcasts are also pushed to GossipFanout random members this often.</summary>
    public int GossipIntervalMs { get; init; } = 100;
    public int GossipFanout { get; init; } = 3;
    /// <summary>Full-state exchange with one random member (plus one dead member or seed, to heal partitions).</summary>
    public int PushPullIntervalMs { get; init; } = 5000;
    /// <summary>Dead and left members are forgotten after this long.</summary>
    public int DeadReapMs { get; init; } = 30_000;
    /// <summary>Seeds are asked again this often until one answers a join.</summary>
    public int JoinRetryMs { get; init; } = 1000;
    /// <summary>Piggybacked broadcasts stop filling ping/ack/gossip packets at this size (push-pull is exempt).</summary>
    public int MaxPacketBytes { get; init; } = 1400;
    /// <summary>Lifeguard local health: probe interval and timeout grow up to this factor while acks go missing.</summary>
    public int AwarenessMaxMultiplier { get; init; } = 8;
    /// <summary>Bound on queued broadcasts; the most retransmitted are dropped first.</summary>
    public int MaxQueuedBroadcasts { get; init; } = 1024;

    public void Validate()
    {
        Positive(ProbeIntervalMs, nameof(ProbeIntervalMs));
        Positive(ProbeTimeoutMs, nameof(ProbeTimeoutMs));
        if (ProbeTimeoutMs >= ProbeIntervalMs) throw new ArgumentException("ProbeTimeoutMs must be shorter than ProbeIntervalMs");
        if (IndirectProbeCount < 0) throw new ArgumentException("IndirectProbeCount must not be negative");
        Positive(SuspicionMultiplier, nameof(SuspicionMultiplier));
        Positive(SuspicionMinTimeoutMs, nameof(SuspicionMinTimeoutMs));
        if (SuspicionMaxTimeoutMs < SuspicionMinTimeoutMs) throw new ArgumentException("SuspicionMaxTimeoutMs must be at least SuspicionMinTimeoutMs");
        Positive(SuspicionConfirmations, nameof(SuspicionConfirmations));
        Positive(RetransmitMultiplier, nameof(RetransmitMultiplier));
        Positive(GossipIntervalMs, nameof(GossipIntervalMs));
        Positive(GossipFanout, nameof(GossipFanout));
        Positive(PushPullIntervalMs, nameof(PushPullIntervalMs));
        Positive(DeadReapMs, nameof(DeadReapMs));
        Positive(JoinRetryMs, nameof(JoinRetryMs));
        if (MaxPacketBytes is < 512 or > GossipCodec.MaxPacketBytes) throw new ArgumentException($"MaxPacketBytes must be within 512..{GossipCodec.MaxPacketBytes}");
        Positive(AwarenessMaxMultiplier, nameof(AwarenessMaxMultiplier));
        Positive(MaxQueuedBroadcasts, nameof(MaxQueuedBroadcasts));
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentException($"{name} must be positive, is {value}");
    }
}
