using P2PReplay.Discovery.Gossip;

namespace P2PReplay.Tests.Gossip;

/// <summary>
/// Deterministic in-memory network for GossipNode: a simulated clock advanced in fixed steps, seeded loss and
/// delay, partitions and stopped nodes. Also compiled into bench/gossip (so it must not use xunit).
/// </summary>
public sealed class GossipSimulation
{
    public sealed class SimNode(GossipNode node, int index)
    {
        public GossipNode Node { get; set; } = node;
        public int Index { get; } = index;
        public string Address => Node.Local.Address;
        public string NodeId => Node.Local.NodeId;
        /// <summary>A stopped node neither ticks nor receives: it crashed.</summary>
        public bool Running { get; set; } = true;
        public int Group { get; set; }
        public bool Isolated { get; set; }
    }

    private readonly record struct InFlight(string From, string To, byte[] Payload);

    private readonly GossipConfig _config;
    private readonly Random _network;
    private readonly int _seed;
    private readonly PriorityQueue<InFlight, (long At, long Order)> _inFlight = new();
    private readonly Dictionary<string, SimNode> _byAddress = new(StringComparer.Ordinal);
    private long _order;

    public GossipSimulation(int seed, GossipConfig? config = null)
    {
        _seed = seed;
        _config = config ?? new GossipConfig();
        _network = new Random(seed);
    }

    public List<SimNode> Nodes { get; } = [];
    public long NowMs { get; private set; } = 1_000;
    public int StepMs { get; set; } = 5;
    public double LossRate { get; set; }
    public int MinDelayMs { get; set; } = 1;
    public int MaxDelayMs { get; set; } = 10;
    public long PacketsSent { get; private set; }
    public long BytesSent { get; private set; }
    /// <summary>Called for every event a node reports, with the node that saw it.</summary>
    public Action<SimNode, GossipEvent>? OnEvent { get; set; }
    public List<(SimNode Observer, GossipEvent Event)> Events { get; } = [];
    /// <summary>Called for every packet just before it is delivered (after loss and partitions).</summary>
    public Action<SimNode, SimNode, byte[]>? OnDeliver { get; set; }
    public bool RecordEvents { get; set; } = true;

    /// <summary>
    /// Seeded System.Random streams from nearby seeds are correlated (nodes would shuffle their probe rounds
    /// alike), so node seeds are spread by a SplitMix64 finaliser.
    /// </summary>
    private static int MixSeed(int seed, int index)
    {
        ulong z = ((ulong)(uint)seed << 32 | (uint)index) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }

    public static string NodeIdOf(int index) => $"{0x5eed0000u + (uint)index:x16}";
    public static string AddressOf(int index) => $"10.0.{index / 250}.{index % 250 + 1}:7946";

    public SimNode AddNode(string site = "lab", GossipConfig? config = null)
    {
        int index = Nodes.Count;
        var info = new MemberInfo(NodeIdOf(index), AddressOf(index), site, 8, 16L << 30, "idle");
        var node = new SimNode(new GossipNode(config ?? _config, info, new Random(MixSeed(_seed, index))), index);
        Nodes.Add(node);
        _byAddress[info.Address] = node;
        return node;
    }

    /// <summary>A crashed node comes back with empty state (incarnation 0) and joins through the given seeds.</summary>
    public void Restart(SimNode node, IEnumerable<string> seeds)
    {
        node.Node = new GossipNode(_config, node.Node.Local, new Random(MixSeed(_seed, node.Index + 1_000_000)));
        node.Running = true;
        node.Node.Join(seeds, NowMs);
    }

    /// <summary>Adds n nodes; all but the first join through the first as seed.</summary>
    public void Bootstrap(int n)
    {
        for (int i = 0; i < n; i++)
        {
            SimNode node = AddNode(site: $"site{i % 3}");
            node.Node.Join(i == 0 ? [] : [Nodes[0].Address], NowMs);
        }
    }

    public void Partition(IEnumerable<SimNode> side)
    {
        foreach (SimNode node in side) node.Group = 1;
    }

    public void Heal()
    {
        foreach (SimNode node in Nodes) node.Group = 0;
    }

    private bool Reachable(SimNode from, SimNode to) => from.Group == to.Group && !from.Isolated && !to.Isolated;

    public void Step()
    {
        NowMs += StepMs;
        while (_inFlight.TryPeek(out InFlight packet, out (long At, long Order) key) && key.At <= NowMs)
        {
            _inFlight.Dequeue();
            if (!_byAddress.TryGetValue(packet.To, out SimNode? to) || !to.Running) continue;
            if (!_byAddress.TryGetValue(packet.From, out SimNode? from) || !Reachable(from, to)) continue;
            OnDeliver?.Invoke(from, to, packet.Payload);
            to.Node.Receive(packet.From, packet.Payload, NowMs);
        }
        foreach (SimNode node in Nodes)
        {
            if (!node.Running) continue;
            node.Node.Tick(NowMs);
            foreach (OutgoingPacket packet in node.Node.TakeOutgoing())
            {
                PacketsSent++;
                BytesSent += packet.Payload.Length;
                if (!_byAddress.TryGetValue(packet.Destination, out SimNode? to) || !Reachable(node, to)) continue;
                if (LossRate > 0 && _network.NextDouble() < LossRate) continue;
                long at = NowMs + _network.Next(MinDelayMs, MaxDelayMs + 1);
                _inFlight.Enqueue(new InFlight(node.Address, packet.Destination, packet.Payload), (at, _order++));
            }
            foreach (GossipEvent e in node.Node.TakeEvents())
            {
                if (RecordEvents) Events.Add((node, e));
                OnEvent?.Invoke(node, e);
            }
        }
    }

    public void RunFor(long ms)
    {
        long end = NowMs + ms;
        while (NowMs < end) Step();
    }

    /// <summary>Steps until the condition holds (checked after each step); returns false on timeout.</summary>
    public bool RunUntil(Func<bool> condition, long maxMs)
    {
        long end = NowMs + maxMs;
        while (NowMs < end)
        {
            Step();
            if (condition()) return true;
        }
        return condition();
    }

    public static MemberStatus? StatusOf(GossipNode observer, string nodeId)
    {
        foreach (MemberSnapshot m in observer.Members) if (m.Info.NodeId == nodeId) return m.Status;
        return null;
    }

    /// <summary>True when every running node sees every other running node alive, and sees nothing else alive.</summary>
    public bool Converged()
    {
        var running = Nodes.Where(n => n.Running && !n.Node.HasLeft).Select(n => n.NodeId).ToHashSet(StringComparer.Ordinal);
        foreach (SimNode node in Nodes)
        {
            if (!node.Running || node.Node.HasLeft) continue;
            var alive = node.Node.Members.Where(m => m.Status == MemberStatus.Alive).Select(m => m.Info.NodeId).ToHashSet(StringComparer.Ordinal);
            if (!alive.SetEquals(running)) return false;
        }
        return true;
    }
}
