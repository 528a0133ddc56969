using System.Globalization;
using Microsoft.Extensions.Logging;
using P2PReplay.Cluster.Vms;
using P2PReplay.Consensus;
using P2PReplay.Consensus.Storage;
using P2PReplay.Discovery.Gossip;
using P2PReplay.Discovery.Mdns;
using P2PReplay.Transport;

namespace P2PReplay.Cluster;

internal sealed partial class ClusterNode
{
    private static readonly TimeSpan LanQueryFast = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan LanQuerySlow = TimeSpan.FromSeconds(30);
    private const int CapacityRefreshMs = 10_000;
    private const int MembershipCheckMs = 500;
    /// <summary>A member gossip has declared dead for this long loses its Raft seat.</summary>
    private const int DeadBeforeRemovalMs = 30_000;

    /// <summary>Snapshot the cluster state and truncate the Raft log behind it every this many applied entries.</summary>
    private const ulong CompactEvery = 1000;
    private ulong lastCompactedIndex;
    private long nextLanQueryMs, nextCapacityMs, nextMembershipMs;
    private string lastRole = "";
    private (int Voters, int Learners) lastConfiguration;
    private readonly Dictionary<string, long> deadSince = new(StringComparer.Ordinal);
    /// <summary>The listen address each peer proved in its handshake, from its latest message (fallback for Raft routing).</summary>
    private readonly Dictionary<string, string> heardFrom = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> lastRejoinMs = new(StringComparer.Ordinal);
    private const int RejoinIntervalMs = 2000;

    /// <summary>Starts the peer listener, gossip, Raft and mDNS for a cluster secret (on the loop, or before it runs).</summary>
    private async Task StartFabricAsync(ClusterSecret clusterSecret, bool bootstrap, IReadOnlyList<string> seeds, CancellationToken cancel)
    {
        var context = new PeerContext(identity, clusterSecret, new TransportOptions(), time, logger: loggers.CreateLogger("p2preplay.transport"));
        var peers = new PeerNetwork(context, (message, _) =>
        {
            OnPeerMessage(message);
            return ValueTask.CompletedTask;
        });
        peers.Start(config.Listen, advertisedAddress);
        await Task.CompletedTask.ConfigureAwait(false);

        var self = new MemberInfo(identity.NodeId, advertisedAddress, config.Site, NodeCapacity.Cores, NodeCapacity.MemoryBytes, NodeCapacity.State(NodeCapacity.LoadAverage(), NodeCapacity.Cores));
        var members = new GossipNode(new GossipConfig(), self, new Random(random.Next()));
        string[] dial = seeds.Where(s => s != advertisedAddress).Distinct(StringComparer.Ordinal).ToArray();
        if (dial.Length > 0) members.Join(dial, NowMs);

        var storage = new FileRaftStorage(Path.Combine(config.DataDir, "raft"));
        state.Restore(storage.Snapshot.Data, storage.Snapshot.Metadata.Index);
        var consensus = new RaftNode(new RaftConfig
        {
            Id = identity.NumericId,
            ElectionTicks = ElectionTicks,
            HeartbeatTicks = HeartbeatTicks,
            PreVote = true,
            CheckQuorum = true,
            // Only the node that creates the cluster starts with a configuration (itself); the others are added
            // by the leader when gossip shows them alive.
            BootstrapVoters = bootstrap ? [identity.NumericId] : [],
        }, storage, new Random(random.Next()));

        secret = clusterSecret;
        network = peers;
        outbox = new PeerOutbox(peers);
        var netLink = new VmNetLink(peers, advertisedAddress, identity.NodeId);
        vms = new VmManager(identity.NodeId, peers, loggers.CreateLogger("p2preplay.vm"), () => NowMs, processStartUnixMs)
        {
            NetLink = netLink,
            CheckpointEveryBytes = (long)config.CheckpointEveryKib << 10,
            Images = images = new Images.ImageService(ImageStore(), peers, loggers.CreateLogger("p2preplay.image"))
            {
                RefuseToServe = Failpoint("image-serve-refuse"),
            },
            FailpointCorruptReplicaRandom = Failpoint("replica-corrupt-random"),
            FailpointCorruptReplicaLog = Failpoint("replica-corrupt-log"),
        };
        frontEnd = new FrontEnd(netLink, config.ExposeAddress ?? config.Listen.Address, loggers.CreateLogger("p2preplay.frontend"), () => NowMs,
            () => Random.Shared.NextInt64(1, long.MaxValue));
        netLink.LocalPrimary = vms.OnFrontEndMessage;
        netLink.LocalFrontEnd = frontEnd.OnMessage;
        gossip = members;
        raftStorage = storage;
        raft = consensus;
        ClusterLog.Started(logger, identity.NodeId, advertisedAddress, config.Site, self.Cores, self.MemoryBytes >> 20);

        if (config.Mdns)
        {
            var discovery = new MdnsDiscovery(identity.NodeId, int.Parse(advertisedAddress[(advertisedAddress.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture),
                config.Site, config.Advertise, loggers.CreateLogger("p2preplay.mdns"));
            discovery.PeerFound += peer => Post(() => OnLanPeer(peer));
            // The library's start-up takes about a second (interface scan); keep it off the loop.
            _ = Task.Run(discovery.Start, CancellationToken.None);
            lan = discovery;
        }
    }

    /// <summary>The loop: queued work, then a tick whenever one is due, then Raft's Ready and gossip's packets.</summary>
    private async Task RunLoopAsync()
    {
        var interval = TimeSpan.FromMilliseconds(config.TickMilliseconds);
        long nextTick = time.GetTimestamp();
        while (!stopping.IsCancellationRequested)
        {
            TimeSpan wait = time.GetElapsedTime(time.GetTimestamp(), nextTick);
            if (wait > TimeSpan.Zero)
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
                timeout.CancelAfter(wait);
                try
                {
                    if (!await inbox.Reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false)) return;
                }
                catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
                {
                }
            }
            try
            {
                while (inbox.Reader.TryRead(out var work)) work();
                if (time.GetTimestamp() >= nextTick)
                {
                    Tick();
                    nextTick += (long)(interval.TotalSeconds * time.TimestampFrequency);
                    long behind = (long)time.GetElapsedTime(nextTick).TotalMilliseconds;
                    if (behind > 10 * config.TickMilliseconds)
                    {
                        // After a stall (suspended machine, debugger) skip the missed ticks instead of racing through them.
                        ClusterLog.LoopLate(logger, behind);
                        nextTick = time.GetTimestamp();
                    }
                }
                Flush();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                ClusterLog.LoopFailed(logger, e);
            }
        }
    }

    private void Tick()
    {
        if (gossip is null || raft is null) return;
        long now = NowMs;
        gossip.Tick(now);
        raft.Tick();
        var changes = gossip.TakeEvents();
        foreach (var change in changes) OnGossipEvent(change, now);
        if (changes.Count > 0) SaveKnownPeers();
        TickFailovers();
        if (now >= nextMembershipMs)
        {
            nextMembershipMs = now + MembershipCheckMs;
            AdjustMembership(now);
            // Also outside of applied entries: a copy may have waited for a peer's address (after a restart).
            ReconcileCopies();
        }
        if (now >= nextCapacityMs)
        {
            nextCapacityMs = now + CapacityRefreshMs;
            string load = NodeCapacity.State(NodeCapacity.LoadAverage(), NodeCapacity.Cores);
            if (load != gossip.Local.State) gossip.UpdateLocal(gossip.Local with { State = load });
        }
        if (lan is not null && now >= nextLanQueryMs)
        {
            bool alone = !gossip.Members.Any(m => m.Info.NodeId != identity.NodeId && m.Status == MemberStatus.Alive);
            nextLanQueryMs = now + (long)(alone ? LanQueryFast : LanQuerySlow).TotalMilliseconds;
            lan.Query();
        }
        PublishStatus();
    }

    /// <summary>Sends what gossip and Raft produced; persists Raft's state before its messages leave.</summary>
    private void Flush()
    {
        if (gossip is null || raft is null || network is null || raftStorage is null) return;
        while (raft.HasReady)
        {
            var ready = raft.TakeReady();
            raftStorage.Save(ready.HardState, ready.Entries, ready.Snapshot);
            if (ready.Snapshot is { } snapshot) state.Restore(snapshot.Data, snapshot.Metadata.Index);
            foreach (var message in ready.Messages) SendRaft(message);
            foreach (var entry in ready.CommittedEntries) Apply(entry);
            raft.Advance(ready);
            if (ready.CommittedEntries.Count > 0 || ready.Snapshot is not null) AfterApply();
            if (state.AppliedIndex >= lastCompactedIndex + CompactEvery && raft.Compact(state.AppliedIndex, state.Snapshot()))
                lastCompactedIndex = state.AppliedIndex;
        }
        foreach (var packet in gossip.TakeOutgoing()) outbox!.Send(packet.Destination, ChannelKind.Gossip, packet.Payload);
        string role = $"{raft.State}/{raft.Term}/{raft.LeaderId}";
        if (role != lastRole)
        {
            lastRole = role;
            ClusterLog.RaftRole(logger, RaftStateName(raft.State), raft.Term, raft.LeaderId == 0 ? "none" : NodeIdText(raft.LeaderId));
            PublishStatus();
        }
    }

    private void Apply(Entry entry)
    {
        if (entry.Type == EntryType.ConfChange)
        {
            var configuration = raft!.ConfState;
            var now = (configuration.Voters.Count, configuration.Learners.Count);
            if (now != lastConfiguration)
            {
                lastConfiguration = now;
                ClusterLog.Membership(logger, now.Item1, now.Item2);
            }
            state.Apply(entry.Index, []);
            return;
        }
        state.Apply(entry.Index, entry.Data);
    }

    private void SendRaft(Message message)
    {
        string? address = AddressOf(message.To);
        if (address is null)
        {
            // Unknown to gossip (yet): Raft retries on its own, so dropping is safe.
            return;
        }
        outbox!.Send(address, ChannelKind.Raft, RaftCodec.Encode(message));
    }

    private string? AddressOf(ulong raftId)
    {
        string id = NodeIdText(raftId);
        foreach (var member in gossip!.Members)
        {
            if (member.Info.NodeId == id && member.Status is not MemberStatus.Left) return member.Info.Address;
        }
        return heardFrom.GetValueOrDefault(id);
    }

    internal static string NodeIdText(ulong id) => id.ToString("x16", CultureInfo.InvariantCulture);

    internal static ulong? RaftIdOf(string nodeId) =>
        nodeId.Length == 16 && ulong.TryParse(nodeId, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong id) ? id : null;

    /// <summary>Network input (any thread): decode and check it here, then hand it to the loop.</summary>
    private void OnPeerMessage(PeerMessage message)
    {
        switch (message.Kind)
        {
            case ChannelKind.Gossip:
                byte[] packet = message.Payload.ToArray();
                Post(() =>
                {
                    Heard(message);
                    gossip?.Receive(message.RemoteAddress, packet, NowMs);
                });
                break;
            case ChannelKind.Raft:
                Message decoded;
                try
                {
                    decoded = RaftCodec.Decode(message.Payload.Span);
                }
                catch (RaftFormatException e)
                {
                    ClusterLog.DroppedMessage(logger, "raft", message.RemoteNodeId, e.Message);
                    return;
                }
                // The handshake proved who sent it: a member cannot speak for another in Raft.
                if (NodeIdText(decoded.From) != message.RemoteNodeId)
                {
                    ClusterLog.DroppedMessage(logger, "raft", message.RemoteNodeId, $"claims to be from {NodeIdText(decoded.From)}");
                    return;
                }
                Post(() =>
                {
                    Heard(message);
                    raft?.Step(decoded);
                });
                break;
            case ChannelKind.VmLog:
                vms?.OnMessage(message.RemoteNodeId, message.Payload);
                break;
            case ChannelKind.Control:
                OnControlMessage(message);
                break;
            case ChannelKind.VmNet:
                OnNetMessage(message);
                break;
            case ChannelKind.Image:
                images?.OnMessage(message);
                break;
            default:
                ClusterLog.DroppedMessage(logger, message.Kind.ToString(), message.RemoteNodeId, "no handler for this channel");
                break;
        }
    }

    /// <summary>
    /// An authenticated member spoke to us: remember where it listens, and if gossip does not count it alive (we
    /// restarted and forgot it, or it came back), gossip with it again rather than wait for it to find us.
    /// </summary>
    private void Heard(PeerMessage message)
    {
        if (gossip is null || message.RemoteAddress.Length == 0) return;
        heardFrom[message.RemoteNodeId] = message.RemoteAddress;
        bool alive = gossip.Members.Any(m => m.Info.NodeId == message.RemoteNodeId && m.Status == MemberStatus.Alive);
        if (alive) return;
        long now = NowMs;
        if (lastRejoinMs.TryGetValue(message.RemoteNodeId, out long last) && now - last < RejoinIntervalMs) return;
        lastRejoinMs[message.RemoteNodeId] = now;
        gossip.Join([message.RemoteAddress], now);
    }

    private void OnLanPeer(LanPeer peer)
    {
        if (gossip is null) return;
        if (gossip.Members.Any(m => m.Info.NodeId == peer.NodeId && m.Status == MemberStatus.Alive)) return;
        ClusterLog.LanPeerFound(logger, peer.NodeId, peer.Address);
        gossip.Join([peer.Address], NowMs);
    }

    /// <summary>Every member address gossip knows (dead ones too: they may come back), never an empty list.</summary>
    private void SaveKnownPeers()
    {
        var addresses = gossip!.Members.Where(m => m.Info.NodeId != identity.NodeId && m.Status != MemberStatus.Left).Select(m => m.Info.Address).ToList();
        if (addresses.Count == 0) return;
        try
        {
            knownPeers.Save(addresses);
        }
        catch (IOException e)
        {
            ClusterLog.PeersFileFailed(logger, e.Message);
        }
    }

    private void OnGossipEvent(GossipEvent change, long now)
    {
        var member = change.Member;
        if (member.Status is MemberStatus.Dead or MemberStatus.Left)
        {
            deadSince.TryAdd(member.Info.NodeId, now);
        }
        else
        {
            deadSince.Remove(member.Info.NodeId);
        }
        if (change.Kind is GossipEventKind.Joined or GossipEventKind.Suspect or GossipEventKind.Dead or GossipEventKind.Left or GossipEventKind.Alive)
            ClusterLog.MemberChanged(logger, member.Info.NodeId, member.Info.Address, StatusName(member.Status));
    }

    /// <summary>The leader makes Raft's voters follow gossip's view: members join as learners, up to 5 vote.</summary>
    private void AdjustMembership(long now)
    {
        if (raft is null || gossip is null || raft.State != RaftState.Leader) return;
        var live = new HashSet<ulong> { identity.NumericId };
        foreach (var member in gossip.Members)
        {
            if (member.Status is MemberStatus.Alive or MemberStatus.Suspect && RaftIdOf(member.Info.NodeId) is ulong id && id != identity.NumericId) live.Add(id);
        }
        var dead = deadSince.Where(d => now - d.Value >= DeadBeforeRemovalMs).Select(d => RaftIdOf(d.Key)).OfType<ulong>().ToHashSet();
        var change = VoterPolicy.Next(raft.ConfState, live, dead, identity.NumericId, MaxVoters);
        if (change is null) return;
        if (raft.ProposeConfChange(change.Value).Accepted) ClusterLog.ProposedMembership(logger, $"{change.Value.Type} {NodeIdText(change.Value.NodeId)}");
    }

    private void PublishStatus()
    {
        if (gossip is null || raft is null)
        {
            status = status with { Address = advertisedAddress };
            return;
        }
        long now = NowMs;
        var configuration = raft.ConfState;
        var members = new List<MemberView>();
        foreach (var member in gossip.Members.OrderBy(m => m.Info.NodeId, StringComparer.Ordinal))
        {
            bool self = member.Info.NodeId == identity.NodeId;
            ulong? id = RaftIdOf(member.Info.NodeId);
            string role = id is ulong r && r == raft.LeaderId ? "leader"
                : id is ulong v && configuration.Voters.Contains(v) ? "voter"
                : id is ulong l && configuration.Learners.Contains(l) ? "learner" : "none";
            members.Add(new MemberView(member.Info.NodeId, member.Info.Address, member.Info.Site, StatusName(member.Status), member.Info.State,
                member.Info.Cores, member.Info.MemoryBytes, role, self ? null : Math.Max(0, now - member.LastHeardMs), self ? null : member.RoundTripMs, self));
        }
        status = new NodeStatus(identity.NodeId, advertisedAddress, config.Site, true, RaftStateName(raft.State),
            raft.LeaderId == 0 ? null : NodeIdText(raft.LeaderId), raft.Term, raft.Commit, configuration.Voters.Count, configuration.Learners.Count, members);
    }

    private static string StatusName(MemberStatus status) => status.ToString().ToLowerInvariant();

    private static string RaftStateName(RaftState role) => role switch
    {
        RaftState.Leader => "leader",
        RaftState.Follower => "follower",
        RaftState.Candidate => "candidate",
        RaftState.PreCandidate => "pre-candidate",
        _ => role.ToString().ToLowerInvariant(),
    };

    /// <summary>Test fault injection: P2PREPLAY_FAILPOINTS holds comma-separated names.</summary>
    private static bool Failpoint(string name) => (Environment.GetEnvironmentVariable("P2PREPLAY_FAILPOINTS") ?? "").Split(',').Contains(name);
}
