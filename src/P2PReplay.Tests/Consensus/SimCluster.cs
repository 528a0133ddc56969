using P2PReplay.Consensus;
using P2PReplay.Consensus.Storage;

namespace P2PReplay.Tests.Consensus;

/// <summary>One simulated peer: durable storage survives a crash; the RaftNode and anything unsaved do not.</summary>
internal sealed class SimPeer(ulong id, IRaftStorage storage)
{
    public ulong Id { get; } = id;

    public IRaftStorage Storage { get; set; } = storage;

    public RaftNode? Node { get; set; }

    public bool Alive => Node is not null;

    /// <summary>The state machine: the data applied at each index (a snapshot install jumps it forward).</summary>
    public SortedDictionary<ulong, Entry> Applied { get; } = [];

    public ulong AppliedIndex { get; set; }

    public IReadOnlyList<ulong> Bootstrap { get; set; } = [];
}

/// <summary>
/// A deterministic in-memory cluster: seeded loss, delay (hence reordering), duplication, symmetric and one-way
/// partitions, crashes and restarts from storage. Observers see every persisted Ready and every apply.
/// </summary>
internal sealed class SimCluster
{
    private readonly List<(long Due, int Order, Message Message)> inFlight = [];
    private readonly HashSet<(ulong From, ulong To)> blocked = [];
    private int order;

    private readonly Func<ulong, IRaftStorage> openStorage;

    /// <param name="openStorage">Opens a peer's durable storage (at start and on every restart); default: one MemoryRaftStorage kept across crashes.</param>
    public SimCluster(int seed, IEnumerable<ulong> ids, Func<ulong, RaftConfig>? configure = null, IEnumerable<ulong>? bootstrapVoters = null, Func<ulong, IRaftStorage>? openStorage = null)
    {
        this.openStorage = openStorage ?? (_ => new MemoryRaftStorage());
        Random = new Random(seed);
        Configure = configure ?? (id => new RaftConfig { Id = id, ElectionTicks = 10, HeartbeatTicks = 1 });
        List<ulong> all = [.. ids];
        List<ulong> voters = [.. bootstrapVoters ?? all];
        foreach (ulong id in all)
        {
            var peer = new SimPeer(id, this.openStorage(id)) { Bootstrap = voters.Contains(id) ? voters : [] };
            Peers[id] = peer;
            Start(peer);
        }
    }

    public Random Random { get; }

    public Func<ulong, RaftConfig> Configure { get; set; }

    public SortedDictionary<ulong, SimPeer> Peers { get; } = [];

    public long Now { get; private set; }

    public double LossRate { get; set; }

    public double DuplicateRate { get; set; }

    public int MaxDelay { get; set; }

    /// <summary>Called after a Ready was persisted (before Advance), with the node and the Ready.</summary>
    public Action<SimPeer, Ready>? OnPersisted { get; set; }

    /// <summary>Called for each entry applied by a peer.</summary>
    public Action<SimPeer, Entry>? OnApplied { get; set; }

    /// <summary>Snapshot + compact once a peer's log holds this many applied entries (0: never).</summary>
    public int CompactEvery { get; set; }

    public RaftNode Node(ulong id) => Peers[id].Node ?? throw new InvalidOperationException($"node {id} is down");

    public IEnumerable<RaftNode> LiveNodes => Peers.Values.Where(p => p.Alive).Select(p => p.Node!);

    public RaftNode? Leader => LiveNodes.Where(n => n.State == RaftState.Leader).OrderByDescending(n => n.Term).FirstOrDefault();

    public void Add(ulong id)
    {
        var peer = new SimPeer(id, openStorage(id));
        Peers[id] = peer;
        Start(peer);
    }

    private void Start(SimPeer peer)
    {
        RaftConfig config = Configure(peer.Id) with { BootstrapVoters = peer.Bootstrap };
        peer.Node = new RaftNode(config, peer.Storage, new Random(Random.Next()));
        Snapshot snapshot = peer.Storage.Snapshot;
        peer.Applied.Clear();
        peer.AppliedIndex = snapshot.Metadata.Index;
    }

    public void Crash(ulong id) => Peers[id].Node = null;

    public void Restart(ulong id)
    {
        SimPeer peer = Peers[id];
        if (peer.Alive) return;
        if (peer.Storage is FileRaftStorage file)
        {
            file.Dispose();
            peer.Storage = openStorage(id);
        }
        Start(peer);
    }

    public void Partition(IEnumerable<ulong> side)
    {
        HashSet<ulong> a = [.. side];
        foreach (ulong x in Peers.Keys)
        {
            foreach (ulong y in Peers.Keys)
            {
                if (a.Contains(x) != a.Contains(y)) blocked.Add((x, y));
            }
        }
    }

    public void BlockOneWay(ulong from, ulong to) => blocked.Add((from, to));

    public void Isolate(ulong id) => Partition([id]);

    public void Heal() => blocked.Clear();

    public void TickAll()
    {
        Now++;
        foreach (RaftNode node in LiveNodes.ToList()) node.Tick();
    }

    /// <summary>One simulated tick: every live node ticks, due messages are delivered in random order, Readies are handled.</summary>
    public void Step()
    {
        TickAll();
        ProcessAll();
        DeliverDue();
        ProcessAll();
    }

    public void Run(int ticks)
    {
        for (int i = 0; i < ticks; i++) Step();
    }

    /// <summary>Delivers and processes until no message is left (ignores delays).</summary>
    public void Stabilize(int maxRounds = 1000)
    {
        for (int round = 0; round < maxRounds; round++)
        {
            ProcessAll();
            if (inFlight.Count == 0) return;
            List<(long Due, int Order, Message Message)> batch = [.. inFlight];
            inFlight.Clear();
            foreach ((_, _, Message m) in batch) Deliver(m);
        }
    }

    public void DeliverDue()
    {
        List<(long Due, int Order, Message Message)> due = inFlight.Where(x => x.Due <= Now).ToList();
        inFlight.RemoveAll(x => x.Due <= Now);
        // Shuffle: same-tick messages arrive in any order.
        for (int i = due.Count - 1; i > 0; i--)
        {
            int j = Random.Next(i + 1);
            (due[i], due[j]) = (due[j], due[i]);
        }
        foreach ((_, _, Message m) in due)
        {
            Deliver(m);
            ProcessAll();
        }
    }

    public void DropInFlight() => inFlight.Clear();

    public int InFlightCount => inFlight.Count;

    private void Deliver(Message m)
    {
        if (blocked.Contains((m.From, m.To))) return;
        if (!Peers.TryGetValue(m.To, out SimPeer? peer) || peer.Node is null) return;
        peer.Node.Step(m);
    }

    public void ProcessAll()
    {
        bool any = true;
        while (any)
        {
            any = false;
            foreach (SimPeer peer in Peers.Values)
            {
                if (peer.Node is { HasReady: true } node)
                {
                    Process(peer, node);
                    any = true;
                }
            }
        }
    }

    /// <summary>Chance that a node dies while handling a Ready: before saving it (all of it lost) or after saving but before sending.</summary>
    public double CrashInReadyRate { get; set; }

    private void Process(SimPeer peer, RaftNode node)
    {
        Ready ready = node.TakeReady();
        if (CrashInReadyRate > 0 && Random.NextDouble() < CrashInReadyRate)
        {
            if (Random.Next(2) == 0)
            {
                peer.Storage.Save(ready.HardState, ready.Entries, ready.Snapshot);
                OnPersisted?.Invoke(peer, ready);
            }
            peer.Node = null;
            return;
        }
        peer.Storage.Save(ready.HardState, ready.Entries, ready.Snapshot);
        OnPersisted?.Invoke(peer, ready);
        foreach (Message m in ready.Messages) Send(m);
        if (ready.Snapshot is { } snapshot && snapshot.Metadata.Index > peer.AppliedIndex)
        {
            peer.AppliedIndex = snapshot.Metadata.Index;
        }
        foreach (Entry entry in ready.CommittedEntries)
        {
            if (entry.Index <= peer.AppliedIndex) continue;
            if (entry.Index != peer.AppliedIndex + 1) throw new InvalidOperationException($"node {peer.Id} applies {entry.Index} after {peer.AppliedIndex}");
            peer.AppliedIndex = entry.Index;
            peer.Applied[entry.Index] = entry;
            OnApplied?.Invoke(peer, entry);
        }
        node.Advance(ready);
        if (CompactEvery > 0 && node.Applied >= peer.Storage.FirstIndex + (ulong)CompactEvery)
        {
            node.Compact(node.Applied, BitConverter.GetBytes(node.Applied));
        }
    }

    private void Send(Message m)
    {
        // Everything goes over the wire codec, so real traffic exercises its validation.
        m = RaftCodec.Decode(RaftCodec.Encode(m));
        if (LossRate > 0 && Random.NextDouble() < LossRate) return;
        int copies = DuplicateRate > 0 && Random.NextDouble() < DuplicateRate ? 2 : 1;
        for (int i = 0; i < copies; i++)
        {
            long delay = MaxDelay > 0 ? Random.Next(MaxDelay + 1) : 0;
            inFlight.Add((Now + delay, order++, m));
        }
    }

    /// <summary>Runs until some node leads with a quorum behind it, or fails after maxTicks.</summary>
    public RaftNode ElectLeader(int maxTicks = 500)
    {
        for (int i = 0; i < maxTicks; i++)
        {
            Step();
            if (Leader is { } leader && LiveNodes.Count(n => n.LeaderId == leader.Id && n.Term == leader.Term) > leader.ConfState.Voters.Count / 2) return leader;
        }
        throw new InvalidOperationException($"no leader after {maxTicks} ticks");
    }

    /// <summary>Proposes on the current leader and runs until every live member applied it.</summary>
    public ulong ProposeAndCommit(byte[] data, int maxTicks = 500)
    {
        for (int i = 0; i < maxTicks; i++)
        {
            RaftNode leader = Leader ?? ElectLeader(maxTicks);
            ProposeResult result = leader.Propose(data);
            if (!result.Accepted)
            {
                Step();
                continue;
            }
            for (int j = 0; j < maxTicks; j++)
            {
                // Every live member applied it (a removed node no longer receives the log).
                if (LiveNodes.Where(n => leader.ConfState.Contains(n.Id)).All(n => n.Applied >= result.Index && Peers[n.Id].AppliedIndex >= result.Index))
                {
                    return result.Index;
                }
                Step();
            }
        }
        throw new InvalidOperationException("proposal did not commit");
    }
}
