namespace P2PReplay.Discovery.Gossip;

/// <summary>
/// SWIM membership with Lifeguard refinements, as a pure state machine: the caller passes time in, feeds received
/// packets to <see cref="Receive"/>, calls <see cref="Tick"/> regularly (every 5–20 ms) and delivers
/// <see cref="TakeOutgoing"/>. No clocks, threads or sockets; randomness only from the injected Random.
/// Not thread-safe: drive one instance from one loop.
/// </summary>
public sealed class GossipNode
{
    private sealed class Member(MemberInfo info, ulong incarnation, long nowMs)
    {
        public MemberInfo Info { get; set; } = info;
        public MemberStatus Status { get; set; } = MemberStatus.Alive;
        public ulong Incarnation { get; set; } = incarnation;
        public long LastHeardMs { get; set; } = nowMs;
        public long StatusChangedMs { get; set; } = nowMs;
        public double? SmoothedRoundTripMs { get; set; }
        public double RoundTripVariationMs { get; set; }

        /// <summary>How long an ack from this member may reasonably take (RFC 6298 style: srtt + 4·rttvar); 0 if unmeasured.</summary>
        public long AckTimeoutMs => SmoothedRoundTripMs is double srtt ? (long)Math.Ceiling(srtt + 4 * RoundTripVariationMs) : 0;

        public void AddRoundTrip(double sampleMs)
        {
            if (SmoothedRoundTripMs is not double srtt)
            {
                SmoothedRoundTripMs = sampleMs;
                RoundTripVariationMs = sampleMs / 2;
                return;
            }
            RoundTripVariationMs += (Math.Abs(srtt - sampleMs) - RoundTripVariationMs) / 4;
            SmoothedRoundTripMs = srtt + (sampleMs - srtt) / 8;
        }
        public Suspicion? Suspicion { get; set; }
    }

    /// <summary>Lifeguard dynamic suspicion: the timeout shrinks from max to min as independent confirmations arrive.</summary>
    private sealed class Suspicion(long startMs, string originator, int expectedConfirmations, long minMs, long maxMs)
    {
        private readonly HashSet<string> _confirmers = new(StringComparer.Ordinal);

        public bool Confirm(string fromNodeId)
        {
            if (_confirmers.Count >= expectedConfirmations || fromNodeId == originator) return false;
            return _confirmers.Add(fromNodeId);
        }

        public long DeadlineMs
        {
            get
            {
                if (expectedConfirmations < 1) return startMs + minMs;
                double fraction = Math.Log(_confirmers.Count + 1) / Math.Log(expectedConfirmations + 1);
                long timeout = (long)Math.Floor(maxMs - fraction * (maxMs - minMs));
                return startMs + Math.Max(minMs, timeout);
            }
        }
    }

    private sealed class Probe(string targetNodeId, uint sequence, long startMs, long directDeadlineMs, long finalDeadlineMs)
    {
        public string TargetNodeId { get; } = targetNodeId;
        public uint Sequence { get; } = sequence;
        public long StartMs { get; } = startMs;
        public long DirectDeadlineMs { get; } = directDeadlineMs;
        public long FinalDeadlineMs { get; } = finalDeadlineMs;
        public bool IndirectSent { get; set; }
        /// <summary>The second direct ping has its own sequence, so an ack says which ping it answers (a clean RTT sample).</summary>
        public uint RetrySequence { get; set; }
        public long RetrySentMs { get; set; }
        public int ExpectedNacks { get; set; }
        public int Nacks { get; set; }
    }

    /// <summary>A ping we send on someone else's behalf (ping-req).</summary>
    private sealed class Relay(uint originalSequence, string requesterAddress, bool wantNack, long nackAtMs, long expireMs)
    {
        public uint OriginalSequence { get; } = originalSequence;
        public string RequesterAddress { get; } = requesterAddress;
        public bool WantNack { get; set; } = wantNack;
        public long NackAtMs { get; } = nackAtMs;
        public long ExpireMs { get; } = expireMs;
    }

    private const int MaxRelays = 1024;

    private readonly GossipConfig _config;
    private readonly Random _random;
    private readonly Dictionary<string, Member> _members = new(StringComparer.Ordinal);
    private readonly BroadcastQueue _broadcasts;
    private readonly List<OutgoingPacket> _outgoing = [];
    private readonly List<GossipEvent> _events = [];
    private readonly List<string> _probeOrder = [];
    private readonly Dictionary<uint, Relay> _relays = [];
    private readonly List<string> _seeds = [];
    private MemberInfo _self;
    private int _headerSize;
    private ulong _incarnation;
    private int _probeIndex;
    private Probe? _probe;
    private uint _sequence;
    private int _awareness;
    private bool _started;
    private long _nextProbeMs;
    private long _nextGossipMs;
    private long _nextPushPullMs;
    private long _nextJoinMs;
    private bool _joinPending;
    private bool _left;
    private bool _roundsDephased;

    public GossipNode(GossipConfig config, MemberInfo local, Random random)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(random);
        config.Validate();
        GossipCodec.ValidateMember(local);
        _config = config;
        _random = random;
        _self = local;
        _headerSize = GossipCodec.HeaderSize(local.NodeId, local.Address);
        _broadcasts = new BroadcastQueue(config.MaxQueuedBroadcasts);
    }

    public MemberInfo Local => _self;
    public ulong LocalIncarnation => _incarnation;
    /// <summary>False while a join is waiting for a seed to answer.</summary>
    public bool IsJoined => !_joinPending;
    public bool HasLeft => _left;
    /// <summary>After Leave: true while the "left" news still has retransmissions to go; keep ticking until false.</summary>
    public bool LeaveBroadcastPending => _left && _broadcasts.Contains(_self.NodeId);
    /// <summary>Lifeguard local health score: 0 is healthy; timeouts and probe interval are scaled by score + 1.</summary>
    public int HealthScore => _awareness;
    public int MalformedPackets { get; private set; }

    /// <summary>The local node first, then every known member (including dead and left ones not yet reaped).</summary>
    public IReadOnlyList<MemberSnapshot> Members
    {
        get
        {
            var list = new List<MemberSnapshot>(_members.Count + 1) { LocalSnapshot() };
            foreach (Member m in _members.Values) list.Add(Snapshot(m));
            return list;
        }
    }

    public List<OutgoingPacket> TakeOutgoing()
    {
        List<OutgoingPacket> taken = [.. _outgoing];
        _outgoing.Clear();
        return taken;
    }

    public List<GossipEvent> TakeEvents()
    {
        List<GossipEvent> taken = [.. _events];
        _events.Clear();
        return taken;
    }

    /// <summary>Full-state exchange with the seeds, repeated every JoinRetryMs until one answers.</summary>
    public void Join(IEnumerable<string> seedAddresses, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(seedAddresses);
        Start(nowMs);
        foreach (string seed in seedAddresses)
        {
            if (seed != _self.Address && !_seeds.Contains(seed)) _seeds.Add(seed);
        }
        if (_seeds.Count == 0) return;
        _joinPending = true;
        SendJoin(nowMs);
    }

    /// <summary>New metadata for the local node: a higher incarnation, broadcast to everyone.</summary>
    public void UpdateLocal(MemberInfo info)
    {
        GossipCodec.ValidateMember(info);
        if (info.NodeId != _self.NodeId) throw new ArgumentException("the node id cannot change", nameof(info));
        if (_left) throw new InvalidOperationException("the node has left");
        _self = info;
        _headerSize = GossipCodec.HeaderSize(info.NodeId, info.Address);
        if (_incarnation < ulong.MaxValue) _incarnation++;
        _broadcasts.Enqueue(_self.NodeId, GossipCodec.EncodeMessage(new AliveMessage(_incarnation, _self)));
    }

    /// <summary>Graceful leave: broadcasts "left"; keep ticking while <see cref="LeaveBroadcastPending"/>.</summary>
    public void Leave(long nowMs)
    {
        Start(nowMs);
        if (_left) return;
        _left = true;
        _probe = null;
        _joinPending = false;
        _broadcasts.Enqueue(_self.NodeId, GossipCodec.EncodeMessage(new LeftMessage(_incarnation, _self.NodeId)));
        // Say it right away rather than waiting for the next gossip round.
        _nextGossipMs = nowMs;
        Gossip(nowMs);
    }

    public void Tick(long nowMs)
    {
        Start(nowMs);
        if (_joinPending && nowMs >= _nextJoinMs) SendJoin(nowMs);
        if (!_left)
        {
            AdvanceProbe(nowMs);
            if (_probe is null && nowMs >= _nextProbeMs) StartProbe(nowMs);
        }
        AdvanceRelays(nowMs);
        ExpireSuspicions(nowMs);
        Reap(nowMs);
        Gossip(nowMs);
        if (!_left && nowMs >= _nextPushPullMs)
        {
            _nextPushPullMs = nowMs + _config.PushPullIntervalMs;
            PushPull();
        }
    }

    /// <summary>
    /// Handles one packet. Replies go to the sender's advertised address inside the packet, not to fromAddress
    /// (with TCP transports that is an ephemeral port). Returns false for a malformed packet, which is dropped.
    /// </summary>
    public bool Receive(string fromAddress, ReadOnlySpan<byte> packet, long nowMs)
    {
        _ = fromAddress;
        Start(nowMs);
        GossipPacket decoded;
        try
        {
            decoded = GossipCodec.Decode(packet);
        }
        catch (GossipFormatException)
        {
            MalformedPackets++;
            return false;
        }
        if (decoded.SenderNodeId == _self.NodeId) return true;
        if (_members.TryGetValue(decoded.SenderNodeId, out Member? sender)) sender.LastHeardMs = nowMs;
        foreach (GossipMessage message in decoded.Messages)
        {
            switch (message)
            {
                case PingMessage ping:
                    if (ping.TargetNodeId == _self.NodeId) Send(decoded.SenderAddress, [GossipCodec.EncodeMessage(new AckMessage(ping.Sequence))]);
                    break;
                case IndirectPingMessage request:
                    StartRelay(request, decoded.SenderAddress, nowMs);
                    break;
                case AckMessage ack:
                    HandleAck(ack.Sequence, decoded.SenderNodeId, nowMs);
                    break;
                case NackMessage nack:
                    if (_probe is not null && _probe.Sequence == nack.Sequence) _probe.Nacks++;
                    break;
                case AliveMessage alive:
                    HandleAlive(alive.Incarnation, alive.Member, nowMs);
                    break;
                case SuspectMessage suspect:
                    HandleSuspect(suspect.Incarnation, suspect.NodeId, suspect.FromNodeId, nowMs);
                    break;
                case DeadMessage dead:
                    HandleDead(dead.Incarnation, dead.NodeId, dead.FromNodeId, nowMs);
                    break;
                case LeftMessage left:
                    HandleLeft(left.Incarnation, left.NodeId, nowMs);
                    break;
                case PushPullMessage pushPull:
                    HandlePushPull(pushPull, decoded.SenderNodeId, decoded.SenderAddress, nowMs);
                    break;
            }
        }
        return true;
    }

    private void Start(long nowMs)
    {
        if (_started) return;
        _started = true;
        // Random phases so that nodes started together do not probe and gossip in lockstep.
        _nextProbeMs = nowMs + _random.Next(_config.ProbeIntervalMs);
        _nextGossipMs = nowMs + _random.Next(_config.GossipIntervalMs);
        _nextPushPullMs = nowMs + _config.PushPullIntervalMs / 2 + _random.Next(_config.PushPullIntervalMs / 2 + 1);
    }

    private long Scaled(int ms) => (long)ms * (_awareness + 1);

    private void AdjustAwareness(int delta) => _awareness = Math.Clamp(_awareness + delta, 0, _config.AwarenessMaxMultiplier - 1);

    private int LiveCount()
    {
        int n = _left ? 0 : 1;
        foreach (Member m in _members.Values) if (m.Status is MemberStatus.Alive or MemberStatus.Suspect) n++;
        return n;
    }

    /// <summary>The largest ack timeout among live members, capped so that one bad estimate cannot stall probing.</summary>
    private long SlowestAckTimeoutMs()
    {
        long slowest = 0;
        foreach (Member m in _members.Values) if (m.Status is MemberStatus.Alive or MemberStatus.Suspect) slowest = Math.Max(slowest, m.AckTimeoutMs);
        return Math.Min(slowest, 5L * _config.ProbeIntervalMs);
    }

    private int RetransmitLimit() => _config.RetransmitMultiplier * (int)Math.Ceiling(Math.Log10(LiveCount() + 1));

    // ---- probing -------------------------------------------------------------------------------------------

    private void StartProbe(long nowMs)
    {
        _nextProbeMs = nowMs + Scaled(_config.ProbeIntervalMs);
        Member? target = NextProbeTarget();
        if (target is null) return;
        uint sequence = ++_sequence;
        // On slow links (other sites) the configured timeouts would fail every probe: wait at least as long as
        // the measured round trips say an ack can take, directly and then over the two legs of an indirect probe.
        long directTimeout = Math.Max(Scaled(_config.ProbeTimeoutMs), target.AckTimeoutMs);
        long probeDuration = Math.Max(Scaled(_config.ProbeIntervalMs), directTimeout + 2 * SlowestAckTimeoutMs());
        _nextProbeMs = nowMs + probeDuration;
        _probe = new Probe(target.Info.NodeId, sequence, nowMs, nowMs + directTimeout, nowMs + probeDuration);
        var messages = new List<byte[]>(2);
        // Buddy system: a suspected member learns of its suspicion from the probe itself and refutes at once.
        if (target.Status == MemberStatus.Suspect) messages.Add(GossipCodec.EncodeMessage(new SuspectMessage(target.Incarnation, target.Info.NodeId, _self.NodeId)));
        messages.Add(GossipCodec.EncodeMessage(new PingMessage(sequence, target.Info.NodeId)));
        Send(target.Info.Address, messages);
    }

    private Member? NextProbeTarget()
    {
        for (int attempts = 0; attempts <= _probeOrder.Count + 1; attempts++)
        {
            if (_probeIndex >= _probeOrder.Count)
            {
                // Shuffled round-robin: every member is probed once per round, in a fresh random order.
                _probeOrder.Clear();
                foreach (Member m in _members.Values) if (m.Status is MemberStatus.Alive or MemberStatus.Suspect) _probeOrder.Add(m.Info.NodeId);
                Shuffle(_probeOrder);
                _probeIndex = 0;
                if (_probeOrder.Count == 0) return null;
                // Rounds of nodes started together stay in phase; then a member probed by everyone early in a round
                // is not probed again until the next. One randomly shortened round per node breaks the phase lock.
                if (!_roundsDephased && _probeOrder.Count > 1)
                {
                    _roundsDephased = true;
                    _probeIndex = _random.Next(_probeOrder.Count);
                }
            }
            string id = _probeOrder[_probeIndex++];
            if (_members.TryGetValue(id, out Member? m2) && m2.Status is MemberStatus.Alive or MemberStatus.Suspect) return m2;
        }
        return null;
    }

    private void AdvanceProbe(long nowMs)
    {
        if (_probe is null) return;
        if (!_probe.IndirectSent && nowMs >= _probe.DirectDeadlineMs)
        {
            _probe.IndirectSent = true;
            if (_members.TryGetValue(_probe.TargetNodeId, out Member? target))
            {
                List<Member> helpers = Sample(m => m.Status == MemberStatus.Alive && m.Info.NodeId != _probe.TargetNodeId, _config.IndirectProbeCount);
                byte[] request = GossipCodec.EncodeMessage(new IndirectPingMessage(_probe.Sequence, target.Info.NodeId, target.Info.Address, WantNack: true));
                foreach (Member helper in helpers) Send(helper.Info.Address, [request]);
                _probe.ExpectedNacks = helpers.Count;
                // A second direct ping alongside the indirect ones (memberlist uses a TCP ping here): a single lost
                // packet on the direct path should not be enough to start a suspicion.
                _probe.RetrySequence = ++_sequence;
                _probe.RetrySentMs = nowMs;
                Send(target.Info.Address, [GossipCodec.EncodeMessage(new PingMessage(_probe.RetrySequence, target.Info.NodeId))]);
            }
        }
        if (nowMs < _probe.FinalDeadlineMs) return;
        Probe failed = _probe;
        _probe = null;
        // Lifeguard: missing nacks mean our own links (or we) are the problem; so does having no one to ask.
        AdjustAwareness(failed.ExpectedNacks > 0 ? failed.ExpectedNacks - Math.Min(failed.Nacks, failed.ExpectedNacks) : 1);
        if (_members.TryGetValue(failed.TargetNodeId, out Member? suspect))
        {
            HandleSuspect(suspect.Incarnation, suspect.Info.NodeId, _self.NodeId, nowMs);
        }
    }

    private void HandleAck(uint sequence, string senderNodeId, long nowMs)
    {
        if (_probe is not null && (_probe.Sequence == sequence || (_probe.IndirectSent && _probe.RetrySequence == sequence)))
        {
            // Only the target's own ack is a round-trip sample; acks forwarded by helpers carry the first sequence too.
            if (senderNodeId == _probe.TargetNodeId && _members.TryGetValue(senderNodeId, out Member? target))
            {
                target.AddRoundTrip(nowMs - (sequence == _probe.Sequence ? _probe.StartMs : _probe.RetrySentMs));
            }
            if (_members.TryGetValue(_probe.TargetNodeId, out Member? probed)) probed.LastHeardMs = nowMs;
            _probe = null;
            AdjustAwareness(-1);
            return;
        }
        if (_relays.Remove(sequence, out Relay? relay))
        {
            Send(relay.RequesterAddress, [GossipCodec.EncodeMessage(new AckMessage(relay.OriginalSequence))]);
        }
    }

    private void StartRelay(IndirectPingMessage request, string requesterAddress, long nowMs)
    {
        if (request.TargetNodeId == _self.NodeId)
        {
            Send(requesterAddress, [GossipCodec.EncodeMessage(new AckMessage(request.Sequence))]);
            return;
        }
        // Bounded: a flood of requests must not grow memory; the requester just sees no nack.
        if (_relays.Count >= MaxRelays) return;
        uint sequence = ++_sequence;
        long ackTimeout = _members.TryGetValue(request.TargetNodeId, out Member? target) ? target.AckTimeoutMs : 0;
        long nackAfter = Math.Max(_config.ProbeTimeoutMs * 8L / 10, ackTimeout);
        _relays[sequence] = new Relay(request.Sequence, requesterAddress, request.WantNack,
            nowMs + nackAfter, nowMs + nackAfter + _config.ProbeIntervalMs);
        Send(request.TargetAddress, [GossipCodec.EncodeMessage(new PingMessage(sequence, request.TargetNodeId))]);
    }

    private void AdvanceRelays(long nowMs)
    {
        if (_relays.Count == 0) return;
        List<uint>? expired = null;
        foreach ((uint sequence, Relay relay) in _relays)
        {
            if (relay.WantNack && nowMs >= relay.NackAtMs)
            {
                relay.WantNack = false;
                Send(relay.RequesterAddress, [GossipCodec.EncodeMessage(new NackMessage(relay.OriginalSequence))]);
            }
            if (nowMs >= relay.ExpireMs) (expired ??= []).Add(sequence);
        }
        if (expired is not null) foreach (uint sequence in expired) _relays.Remove(sequence);
    }

    // ---- membership state ----------------------------------------------------------------------------------

    private void HandleAlive(ulong incarnation, MemberInfo info, long nowMs)
    {
        if (info.NodeId == _self.NodeId)
        {
            // Someone holds a newer or different picture of us (e.g. from before a restart): out-number it.
            if (!_left && (incarnation > _incarnation || (incarnation == _incarnation && info != _self))) Refute(incarnation);
            return;
        }
        if (!_members.TryGetValue(info.NodeId, out Member? member))
        {
            member = new Member(info, incarnation, nowMs);
            _members.Add(info.NodeId, member);
            // Insert at a random place in the remaining probe round so that it is probed soon but not first.
            _probeOrder.Insert(_random.Next(_probeIndex, _probeOrder.Count + 1), info.NodeId);
            Broadcast(info.NodeId, new AliveMessage(incarnation, info));
            Emit(GossipEventKind.Joined, member, nowMs);
            return;
        }
        if (incarnation <= member.Incarnation) return;
        MemberStatus previous = member.Status;
        bool changed = member.Info != info;
        member.Info = info;
        member.Incarnation = incarnation;
        member.Suspicion = null;
        if (previous != MemberStatus.Alive) member.StatusChangedMs = nowMs;
        member.Status = MemberStatus.Alive;
        Broadcast(info.NodeId, new AliveMessage(incarnation, info));
        switch (previous)
        {
            case MemberStatus.Dead or MemberStatus.Left:
                Emit(GossipEventKind.Joined, member, nowMs);
                break;
            case MemberStatus.Suspect:
                Emit(GossipEventKind.Alive, member, nowMs);
                if (changed) Emit(GossipEventKind.Updated, member, nowMs);
                break;
            default:
                if (changed) Emit(GossipEventKind.Updated, member, nowMs);
                break;
        }
    }

    private void HandleSuspect(ulong incarnation, string nodeId, string fromNodeId, long nowMs)
    {
        if (nodeId == _self.NodeId)
        {
            RefuteOrReassert(incarnation);
            return;
        }
        if (!_members.TryGetValue(nodeId, out Member? member) || incarnation < member.Incarnation) return;
        switch (member.Status)
        {
            case MemberStatus.Dead or MemberStatus.Left:
                return;
            case MemberStatus.Suspect:
                member.Incarnation = incarnation;
                // An independent confirmation shortens the timeout; pass it on so others shorten theirs too.
                if (member.Suspicion!.Confirm(fromNodeId)) Broadcast(nodeId, new SuspectMessage(incarnation, nodeId, fromNodeId));
                return;
        }
        int live = LiveCount();
        // The refutation has to travel back through gossip: on slow links allow several round trips for it.
        long min = Math.Max(Math.Max(_config.SuspicionMinTimeoutMs, 4 * SlowestAckTimeoutMs()),
            (long)(_config.SuspicionMultiplier * Math.Max(1.0, Math.Log10(live)) * _config.ProbeIntervalMs));
        long max = Math.Max(min, _config.SuspicionMaxTimeoutMs);
        int expected = Math.Min(_config.SuspicionConfirmations, live - 2);
        member.Status = MemberStatus.Suspect;
        member.Incarnation = incarnation;
        member.StatusChangedMs = nowMs;
        member.Suspicion = new Suspicion(nowMs, fromNodeId, expected, min, max);
        // Probe the suspect next (even if our own probe just failed): the ping carries the suspicion (buddy system),
        // so a live member answers with its refutation even if that refutation's gossip missed us; a dead one
        // collects our confirmation sooner.
        _probeOrder.Insert(Math.Min(_probeIndex, _probeOrder.Count), nodeId);
        Broadcast(nodeId, new SuspectMessage(incarnation, nodeId, fromNodeId));
        Emit(GossipEventKind.Suspect, member, nowMs);
    }

    private void HandleDead(ulong incarnation, string nodeId, string fromNodeId, long nowMs)
    {
        if (nodeId == _self.NodeId)
        {
            RefuteOrReassert(incarnation);
            return;
        }
        if (!_members.TryGetValue(nodeId, out Member? member) || incarnation < member.Incarnation) return;
        if (member.Status is MemberStatus.Dead or MemberStatus.Left) return;
        member.Status = MemberStatus.Dead;
        member.Incarnation = incarnation;
        member.Suspicion = null;
        member.StatusChangedMs = nowMs;
        Broadcast(nodeId, new DeadMessage(incarnation, nodeId, fromNodeId));
        Emit(GossipEventKind.Dead, member, nowMs);
    }

    private void HandleLeft(ulong incarnation, string nodeId, long nowMs)
    {
        if (nodeId == _self.NodeId)
        {
            if (!_left && incarnation >= _incarnation) Refute(incarnation);
            return;
        }
        if (!_members.TryGetValue(nodeId, out Member? member) || incarnation < member.Incarnation) return;
        if (member.Status == MemberStatus.Left) return;
        member.Status = MemberStatus.Left;
        member.Incarnation = incarnation;
        member.Suspicion = null;
        member.StatusChangedMs = nowMs;
        Broadcast(nodeId, new LeftMessage(incarnation, nodeId));
        Emit(GossipEventKind.Left, member, nowMs);
    }

    /// <summary>
    /// News that we are suspect or dead: refute it with a higher incarnation, or, if it is older than our last
    /// refutation, send our current alive again, because whoever still spreads it has not heard the refutation.
    /// </summary>
    private void RefuteOrReassert(ulong incarnation)
    {
        if (_left) return;
        if (incarnation >= _incarnation) Refute(incarnation);
        else if (!_broadcasts.Contains(_self.NodeId)) Broadcast(_self.NodeId, new AliveMessage(_incarnation, _self));
    }

    private void Refute(ulong seenIncarnation)
    {
        // Saturate rather than wrap to 0: a wrapped incarnation could never win against older news again.
        ulong highest = Math.Max(_incarnation, seenIncarnation);
        _incarnation = highest == ulong.MaxValue ? highest : highest + 1;
        Broadcast(_self.NodeId, new AliveMessage(_incarnation, _self));
        // Lifeguard: being suspected hints that we are the slow one.
        AdjustAwareness(1);
    }

    private void ExpireSuspicions(long nowMs)
    {
        List<Member>? expired = null;
        foreach (Member m in _members.Values)
        {
            if (m.Suspicion is not null && nowMs >= m.Suspicion.DeadlineMs) (expired ??= []).Add(m);
        }
        if (expired is null) return;
        foreach (Member m in expired) HandleDead(m.Incarnation, m.Info.NodeId, _self.NodeId, nowMs);
    }

    private void Reap(long nowMs)
    {
        List<string>? gone = null;
        foreach (Member m in _members.Values)
        {
            if (m.Status is MemberStatus.Dead or MemberStatus.Left && nowMs - m.StatusChangedMs >= _config.DeadReapMs) (gone ??= []).Add(m.Info.NodeId);
        }
        if (gone is not null) foreach (string id in gone) _members.Remove(id);
    }

    // ---- dissemination -------------------------------------------------------------------------------------

    private void Gossip(long nowMs)
    {
        if (nowMs < _nextGossipMs) return;
        _nextGossipMs = nowMs + _config.GossipIntervalMs;
        if (_broadcasts.Count == 0) return;
        // Dead members get gossip too: if they are alive after all (a healed partition), they learn it and refute.
        foreach (Member target in Sample(m => m.Status != MemberStatus.Left, _config.GossipFanout))
        {
            Send(target.Info.Address, []);
        }
    }

    private void SendJoin(long nowMs)
    {
        _nextJoinMs = nowMs + _config.JoinRetryMs;
        byte[] request = GossipCodec.EncodeMessage(BuildPushPull(isReply: false, isJoin: true));
        foreach (string seed in _seeds) SendAlone(seed, request);
    }

    /// <summary>Anti-entropy with one random live member, plus one dead member or lost seed to heal partitions.</summary>
    private void PushPull()
    {
        byte[] request = GossipCodec.EncodeMessage(BuildPushPull(isReply: false, isJoin: false));
        List<Member> peer = Sample(m => m.Status is MemberStatus.Alive or MemberStatus.Suspect, 1);
        if (peer.Count == 1) SendAlone(peer[0].Info.Address, request);
        var reconnect = new List<string>();
        foreach (Member m in _members.Values) if (m.Status == MemberStatus.Dead) reconnect.Add(m.Info.Address);
        foreach (string seed in _seeds)
        {
            bool known = false;
            foreach (Member m in _members.Values) known |= m.Info.Address == seed && m.Status is MemberStatus.Alive or MemberStatus.Suspect;
            if (!known && !reconnect.Contains(seed)) reconnect.Add(seed);
        }
        if (reconnect.Count > 0) SendAlone(reconnect[_random.Next(reconnect.Count)], request);
    }

    private void HandlePushPull(PushPullMessage message, string senderNodeId, string senderAddress, long nowMs)
    {
        // Reply with our state as it was before merging theirs, so we do not echo their news back.
        if (!message.IsReply) SendAlone(senderAddress, GossipCodec.EncodeMessage(BuildPushPull(isReply: true, isJoin: false)));
        else _joinPending = false;
        foreach (PushPullEntry entry in message.Entries)
        {
            switch (entry.Status)
            {
                case MemberStatus.Alive:
                    HandleAlive(entry.Incarnation, entry.Member, nowMs);
                    break;
                case MemberStatus.Left:
                    HandleLeft(entry.Incarnation, entry.Member.NodeId, nowMs);
                    break;
                default:
                    // Someone else's "dead" only makes us suspect: the member gets a chance to refute (memberlist does the same).
                    HandleSuspect(entry.Incarnation, entry.Member.NodeId, senderNodeId, nowMs);
                    break;
            }
        }
    }

    private PushPullMessage BuildPushPull(bool isReply, bool isJoin)
    {
        var entries = new List<PushPullEntry>(_members.Count + 1)
        {
            new(_self, _left ? MemberStatus.Left : MemberStatus.Alive, _incarnation),
        };
        foreach (Member m in _members.Values)
        {
            if (entries.Count == GossipCodec.MaxPushPullEntries) break;
            entries.Add(new PushPullEntry(m.Info, m.Status, m.Incarnation));
        }
        return new PushPullMessage(isReply, isJoin, entries);
    }

    private void Broadcast(string nodeId, GossipMessage message) => _broadcasts.Enqueue(nodeId, GossipCodec.EncodeMessage(message));

    /// <summary>Sends the given messages plus as many queued broadcasts as fit in MaxPacketBytes.</summary>
    private void Send(string destination, List<byte[]> messages)
    {
        int size = _headerSize;
        foreach (byte[] m in messages) size += m.Length;
        _broadcasts.Take(_config.MaxPacketBytes - size, GossipCodec.MaxMessagesPerPacket - messages.Count, RetransmitLimit(), messages);
        if (messages.Count == 0) return;
        _outgoing.Add(new OutgoingPacket(destination, GossipCodec.EncodePacket(_self.NodeId, _self.Address, messages)));
    }

    private void SendAlone(string destination, byte[] message) =>
        _outgoing.Add(new OutgoingPacket(destination, GossipCodec.EncodePacket(_self.NodeId, _self.Address, [message])));

    private void Emit(GossipEventKind kind, Member member, long nowMs) => _events.Add(new GossipEvent(kind, Snapshot(member), nowMs));

    private static MemberSnapshot Snapshot(Member m) => new(m.Info, m.Status, m.Incarnation, m.LastHeardMs, m.SmoothedRoundTripMs);

    private MemberSnapshot LocalSnapshot() => new(_self, _left ? MemberStatus.Left : MemberStatus.Alive, _incarnation, 0, null);

    private List<Member> Sample(Func<Member, bool> eligible, int count)
    {
        var pool = new List<Member>();
        foreach (Member m in _members.Values) if (eligible(m)) pool.Add(m);
        int take = Math.Min(count, pool.Count);
        for (int i = 0; i < take; i++)
        {
            int j = _random.Next(i, pool.Count);
            (pool[i], pool[j]) = (pool[j], pool[i]);
        }
        pool.RemoveRange(take, pool.Count - take);
        return pool;
    }

    private void Shuffle(List<string> list)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = _random.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }
}
