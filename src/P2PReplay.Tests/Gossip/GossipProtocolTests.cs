using P2PReplay.Discovery.Gossip;

namespace P2PReplay.Tests.Gossip;

/// <summary>One node driven by hand-made packets: exact protocol reactions.</summary>
public sealed class GossipProtocolTests
{
    private static MemberInfo Info(int i) => new(GossipSimulation.NodeIdOf(i), GossipSimulation.AddressOf(i), "lab", 4, 8L << 30, "idle");

    private static readonly MemberInfo Me = Info(0);

    private static GossipNode NodeKnowing(int others, long nowMs = 0)
    {
        var node = new GossipNode(new GossipConfig(), Me, new Random(5));
        for (int i = 1; i <= others; i++) Deliver(node, i, nowMs, new AliveMessage(0, Info(i)));
        node.TakeEvents();
        node.TakeOutgoing();
        return node;
    }

    private static void Deliver(GossipNode node, int from, long nowMs, params GossipMessage[] messages) =>
        Assert.True(node.Receive("203.0.113.9:50000", GossipCodec.Encode(new GossipPacket(Info(from).NodeId, Info(from).Address, messages)), nowMs));

    private static List<(string To, GossipPacket Packet)> Sent(GossipNode node) =>
        [.. node.TakeOutgoing().Select(p => (p.Destination, GossipCodec.Decode(p.Payload)))];

    [Fact]
    public void A_node_hearing_its_own_suspicion_refutes_with_a_higher_incarnation()
    {
        GossipNode node = NodeKnowing(3);
        Deliver(node, 1, 10, new SuspectMessage(0, Me.NodeId, Info(1).NodeId));
        Assert.Equal(1UL, node.LocalIncarnation);
        node.Tick(200);
        List<(string To, GossipPacket Packet)> sent = Sent(node);
        Assert.Contains(sent, s => s.Packet.Messages.Contains(new AliveMessage(1, Me)));
        // Older news (from before the refutation) does not bump again; a dead claim at our incarnation does.
        Deliver(node, 2, 300, new SuspectMessage(0, Me.NodeId, Info(2).NodeId));
        Assert.Equal(1UL, node.LocalIncarnation);
        Deliver(node, 2, 400, new DeadMessage(1, Me.NodeId, Info(2).NodeId));
        Assert.Equal(2UL, node.LocalIncarnation);
    }

    [Fact]
    public void Pings_are_acked_to_the_advertised_address_and_only_for_our_node_id()
    {
        GossipNode node = NodeKnowing(0);
        Deliver(node, 1, 0, new PingMessage(77, Me.NodeId), new PingMessage(78, Info(9).NodeId));
        var sent = Sent(node);
        var ack = Assert.Single(sent);
        Assert.Equal(Info(1).Address, ack.To);
        Assert.Equal(new AckMessage(77), Assert.Single(ack.Packet.Messages));
    }

    [Fact]
    public void A_ping_to_a_suspected_member_carries_the_suspicion()
    {
        GossipNode node = NodeKnowing(4);
        Deliver(node, 2, 0, new SuspectMessage(0, Info(3).NodeId, Info(2).NodeId));
        var toSuspect = new List<GossipPacket>();
        for (long t = 0; t <= 500 && toSuspect.Count == 0; t += 10)
        {
            node.Tick(t);
            toSuspect.AddRange(Sent(node).Where(s => s.To == Info(3).Address && s.Packet.Messages.Any(m => m is PingMessage)).Select(s => s.Packet));
        }
        GossipPacket ping = Assert.Single(toSuspect);
        Assert.Equal(new SuspectMessage(0, Info(3).NodeId, Me.NodeId), ping.Messages[0]);
        Assert.IsType<PingMessage>(ping.Messages[1]);
    }

    [Fact]
    public void An_indirect_probe_forwards_the_ack_or_else_sends_a_nack()
    {
        GossipNode node = NodeKnowing(2);
        Deliver(node, 1, 1_000, new IndirectPingMessage(42, Info(5).NodeId, Info(5).Address, WantNack: true));
        PingMessage relayed = Assert.IsType<PingMessage>(Sent(node).Single(s => s.To == Info(5).Address).Packet.Messages.Single(m => m is PingMessage));
        Deliver(node, 5, 1_020, new AckMessage(relayed.Sequence));
        Assert.Contains(Sent(node), s => s.To == Info(1).Address && s.Packet.Messages.Contains(new AckMessage(42)));

        Deliver(node, 2, 2_000, new IndirectPingMessage(43, Info(6).NodeId, Info(6).Address, WantNack: true));
        Sent(node);
        node.Tick(2_050);
        Assert.DoesNotContain(Sent(node), s => s.Packet.Messages.Contains(new NackMessage(43)));
        node.Tick(2_100);
        Assert.Contains(Sent(node), s => s.To == Info(2).Address && s.Packet.Messages.Contains(new NackMessage(43)));
    }

    [Fact]
    public void Independent_confirmations_shorten_the_suspicion_timeout()
    {
        long DeadAfter(int confirmations)
        {
            GossipNode node = NodeKnowing(9);
            Deliver(node, 1, 0, new SuspectMessage(0, Info(9).NodeId, Info(1).NodeId));
            for (int c = 0; c < confirmations; c++) Deliver(node, 2 + c, 0, new SuspectMessage(0, Info(9).NodeId, Info(2 + c).NodeId));
            for (long t = 0; t < 5_000; t += 10)
            {
                node.Tick(t);
                if (GossipSimulation.StatusOf(node, Info(9).NodeId) == MemberStatus.Dead) return t;
            }
            return long.MaxValue;
        }
        var config = new GossipConfig();
        long confirmed = DeadAfter(3);
        long unconfirmed = DeadAfter(0);
        Assert.InRange(confirmed, config.SuspicionMinTimeoutMs, config.SuspicionMinTimeoutMs + 10);
        // Alone, only our own failed probe confirms: about halfway between min and max.
        Assert.InRange(unconfirmed, confirmed + 300, config.SuspicionMaxTimeoutMs + 10);
    }

    [Fact]
    public void A_suspect_refuting_with_a_higher_incarnation_is_alive_and_stale_news_is_ignored()
    {
        GossipNode node = NodeKnowing(3);
        MemberInfo three = Info(3);
        Deliver(node, 1, 0, new SuspectMessage(4, three.NodeId, Info(1).NodeId));
        Deliver(node, 3, 10, new AliveMessage(4, three));
        Assert.Equal(MemberStatus.Suspect, GossipSimulation.StatusOf(node, three.NodeId));
        Deliver(node, 3, 20, new AliveMessage(5, three));
        Assert.Equal(MemberStatus.Alive, GossipSimulation.StatusOf(node, three.NodeId));
        Deliver(node, 2, 30, new DeadMessage(4, three.NodeId, Info(2).NodeId));
        Assert.Equal(MemberStatus.Alive, GossipSimulation.StatusOf(node, three.NodeId));
        Assert.Equal([GossipEventKind.Suspect, GossipEventKind.Alive], node.TakeEvents().Select(e => e.Kind));
    }

    [Fact]
    public void Malformed_packets_are_dropped_and_counted()
    {
        GossipNode node = NodeKnowing(1);
        Assert.False(node.Receive("x:1", [1, 2, 3], 0));
        Assert.False(node.Receive("x:1", [], 0));
        Assert.Equal(2, node.MalformedPackets);
    }

    [Fact]
    public void Newer_news_about_a_member_supersedes_older_and_retransmits_are_bounded()
    {
        var queue = new BroadcastQueue(capacity: 2);
        queue.Enqueue("a", [1]);
        queue.Enqueue("a", [2]);
        var taken = new List<byte[]>();
        queue.Take(100, 10, transmitLimit: 3, taken);
        Assert.Equal([2], Assert.Single(taken));
        queue.Take(100, 10, 3, taken);
        queue.Take(100, 10, 3, taken);
        Assert.Equal(0, queue.Count);
        queue.Enqueue("a", [1]);
        queue.Enqueue("b", [2]);
        queue.Enqueue("c", [3]);
        Assert.Equal(2, queue.Count);
        taken.Clear();
        queue.Take(1, 10, 3, taken);
        Assert.Single(taken);
    }

    [Fact]
    public void Invalid_configuration_and_metadata_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new GossipNode(new GossipConfig { ProbeTimeoutMs = 500 }, Me, new Random(1)));
        Assert.Throws<ArgumentException>(() => new GossipNode(new GossipConfig(), Me with { NodeId = "" }, new Random(1)));
        GossipNode node = NodeKnowing(0);
        Assert.Throws<ArgumentException>(() => node.UpdateLocal(Me with { NodeId = "other" }));
        node.Leave(0);
        Assert.Throws<InvalidOperationException>(() => node.UpdateLocal(Me));
    }
}
