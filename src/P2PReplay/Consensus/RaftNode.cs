namespace P2PReplay.Consensus;

/// <summary>
/// A Raft peer as a pure state machine (etcd-raft style): time moves only by <see cref="Tick"/>, input only by
/// <see cref="Step"/> and proposals, output only through <see cref="TakeReady"/>.
/// Membership changes are single-server and, as in the Raft dissertation (§4.1), take effect as soon as their
/// entry is APPENDED to a node's log, committed or not (and are undone if that entry is truncated away). The leader
/// accepts a change only once the previous one is committed and an entry of its own term is committed (the fix for
/// the single-server change bug). A leader that removes or demotes itself steps down once that change commits.
/// Learners answer vote requests (as in etcd) so a learner promoted by an entry it has not received yet cannot stall
/// an election; candidates count only voters, so a learner's vote never decides anything by itself.
/// Driver loop (one thread): Tick() every tick interval; Step() each decoded message; then while HasReady:
/// r = TakeReady(); storage.Save(r.HardState, r.Entries, r.Snapshot); send r.Messages (RaftCodec); apply r.Snapshot,
/// r.CommittedEntries, answer r.ReadStates once applied; Advance(r). Periodically Compact(Applied, state) to bound the log.
/// </summary>
public sealed class RaftNode
{
    private readonly RaftConfig config;
    private readonly IRaftStorage storage;
    private readonly Random random;
    private readonly RaftLog log;
    private readonly Dictionary<ulong, Progress> progress = [];
    private readonly Dictionary<ulong, bool> votes = [];
    private List<Message> messages = [];
    private List<ReadState> readStates = [];
    /// <summary>Leader: reads waiting for a quorum of heartbeat answers, oldest first.</summary>
    private readonly List<(ulong RequestId, ulong Index, HashSet<ulong> Acks)> pendingReads = [];
    private HardState lastReadyHardState;
    private bool readyOutstanding;
    private int electionElapsed;
    private int heartbeatElapsed;
    private int randomizedElectionTimeout;
    private ulong pendingConfIndex;
    private ulong leadTransferee;
    /// <summary>Membership at the snapshot (the start of the log); the conf entries in the log apply on top.</summary>
    private ConfState baseConf;
    private readonly List<(ulong Index, ConfChange Change)> confEntries = [];

    public RaftNode(RaftConfig config, IRaftStorage storage, Random random)
    {
        config.Validate();
        this.config = config;
        this.storage = storage;
        this.random = random;
        log = new RaftLog(storage);
        (HardState hardState, ConfState confState) = storage.InitialState();
        baseConf = confState;
        ConfState = confState;
        if (storage.LastIndex >= storage.FirstIndex) OnAppended(storage.Entries(storage.FirstIndex, storage.LastIndex + 1));
        bool storageEmpty = storage.LastIndex == 0 && storage.Snapshot.IsEmpty && hardState.IsEmpty;
        if (storageEmpty && config.BootstrapVoters.Count > 0)
        {
            // Every founding node writes the same AddVoter entries at term 1, so joiners learn the membership by replay.
            ulong[] voters = [.. config.BootstrapVoters.Distinct().Order()];
            List<Entry> founding = [.. voters.Select((voter, i) => new Entry(1, (ulong)i + 1, EntryType.ConfChange, new ConfChange(ConfChangeType.AddVoter, voter).Encode()))];
            log.Append(founding);
            OnAppended(founding);
            Term = 1;
            CommitTo((ulong)voters.Length);
        }
        else
        {
            ulong snapshotIndex = storage.Snapshot.Metadata.Index;
            ulong commit = Math.Max(hardState.Commit, snapshotIndex);
            if (commit > storage.LastIndex) throw new InvalidOperationException($"stored commit {commit} beyond stored last index {storage.LastIndex}");
            Term = hardState.Term;
            Vote = hardState.Vote;
            lastReadyHardState = hardState;
            CommitTo(commit);
        }
        log.Applied = Math.Clamp(config.Applied, log.FirstIndex - 1, log.Committed);
        BecomeFollower(Term, 0);
    }

    public ulong Id => config.Id;

    public RaftState State { get; private set; }

    public ulong Term { get; private set; }

    public ulong Vote { get; private set; }

    public ulong LeaderId { get; private set; }

    public ulong Commit => log.Committed;

    public ulong Applied => log.Applied;

    public ulong LastIndex => log.LastIndex;

    public ulong FirstIndex => log.FirstIndex;

    /// <summary>Membership as of the last conf entry in the log (committed or not).</summary>
    public ConfState ConfState { get; private set; }

    /// <summary>Only voters campaign; a learner or a removed node waits to hear from a leader.</summary>
    public bool Promotable => ConfState.IsVoter(Id);

    public ulong LeadTransferee => leadTransferee;

    /// <summary>The leader's view of each member (empty unless leader).</summary>
    public IReadOnlyDictionary<ulong, PeerProgress> Progress => State == RaftState.Leader ? progress.ToDictionary(p => p.Key, p => p.Value.View) : new Dictionary<ulong, PeerProgress>();

    /// <summary>Everything an operator's `status` shows, in one immutable value.</summary>
    public RaftStatus Status() => new(Id, State, Term, Vote, LeaderId, log.Committed, log.Applied, log.FirstIndex, log.LastIndex, ConfState, leadTransferee, Progress);

    /// <summary>Term of a log entry, or null if compacted/absent (for tests and diagnostics).</summary>
    public ulong? TermAt(ulong index) => log.Term(index);

    /// <summary>Entries [lo, hi) still in the log (for tests and diagnostics).</summary>
    public IReadOnlyList<Entry> EntriesBetween(ulong lo, ulong hi) => log.Slice(lo, hi, int.MaxValue) ?? [];

    private HardState CurrentHardState => new(Term, Vote, log.Committed);

    private int Quorum => ConfState.Voters.Count / 2 + 1;

    // ---- driver API ----

    public void Tick()
    {
        if (State == RaftState.Leader) TickLeader();
        else TickElection();
    }

    public ProposeResult Propose(byte[] data) => ProposeEntry(EntryType.Normal, data);

    public ProposeResult ProposeConfChange(ConfChange change) => ProposeEntry(EntryType.ConfChange, change.Encode());

    /// <summary>
    /// Linearizable read (dissertation §6.4, ReadIndex): the leader notes its commit index and confirms with a
    /// heartbeat round that it still leads; a <see cref="ReadState"/> then comes out in a Ready. Returns false when
    /// this node cannot serve it now (not leader, or no entry of its term committed yet): retry or ask the leader.
    /// Requests are dropped if leadership is lost before confirmation; the caller times out and retries.
    /// </summary>
    public bool ReadIndex(ulong requestId)
    {
        if (requestId == 0) throw new ArgumentOutOfRangeException(nameof(requestId), "request id 0 is reserved");
        if (State != RaftState.Leader || log.Term(log.Committed) != Term) return false;
        if (Quorum <= (ConfState.IsVoter(Id) ? 1 : 0))
        {
            readStates.Add(new ReadState(requestId, log.Committed));
            return true;
        }
        pendingReads.Add((requestId, log.Committed, ConfState.IsVoter(Id) ? [Id] : []));
        foreach ((ulong id, Progress p) in progress)
        {
            if (id != Id) Send(new Message { Type = MessageType.Heartbeat, From = Id, To = id, Term = Term, Commit = Math.Min(p.Match, log.Committed), Context = requestId });
        }
        return true;
    }

    /// <summary>Starts an election now (a pre-vote first if enabled).</summary>
    public void Campaign() => Hup(transfer: false);

    /// <summary>Hands leadership to a voter: catches it up, then tells it to campaign at once. Proposals are refused meanwhile; aborted after an election timeout.</summary>
    public bool TransferLeadership(ulong target)
    {
        if (State != RaftState.Leader || target == Id || !ConfState.IsVoter(target) || !progress.TryGetValue(target, out Progress? pr)) return false;
        leadTransferee = target;
        electionElapsed = 0;
        if (pr.Match == log.LastIndex) Send(new Message { Type = MessageType.TimeoutNow, From = Id, To = target, Term = Term });
        else SendAppend(target);
        return true;
    }

    public bool HasReady => !readyOutstanding && (messages.Count > 0 || readStates.Count > 0 || log.UnstableEntries.Count > 0 || log.UnstableSnapshot is not null || CurrentHardState != lastReadyHardState || log.HasNextCommitted);

    public Ready TakeReady()
    {
        if (readyOutstanding) throw new InvalidOperationException("the previous Ready has not been advanced");
        HardState hardState = CurrentHardState;
        var ready = new Ready(
            hardState != lastReadyHardState ? hardState : null,
            [.. log.UnstableEntries],
            log.UnstableSnapshot,
            log.NextCommitted(config.MaxCommittedEntriesPerReady),
            messages,
            readStates);
        lastReadyHardState = hardState;
        messages = [];
        readStates = [];
        readyOutstanding = true;
        return ready;
    }

    /// <summary>The Ready has been persisted, sent and applied.</summary>
    public void Advance(Ready ready)
    {
        readyOutstanding = false;
        if (ready.Snapshot is { } snapshot)
        {
            log.StableSnapshotTo(snapshot.Metadata.Index);
            log.Applied = Math.Max(log.Applied, snapshot.Metadata.Index);
        }
        if (ready.CommittedEntries.Count > 0) log.Applied = Math.Max(log.Applied, ready.CommittedEntries[^1].Index);
        if (ready.Entries.Count > 0)
        {
            Entry last = ready.Entries[^1];
            log.StableTo(last.Index, last.Term);
            // The leader counts itself toward a commit only for entries it has persisted.
            if (State == RaftState.Leader && progress.TryGetValue(Id, out Progress? self) && self.MaybeUpdate(log.StableLastIndex)) LeaderMaybeCommit();
        }
    }

    /// <summary>
    /// The application snapshotted its state machine at <paramref name="index"/> (≤ Applied): store the snapshot
    /// and drop the log up to it. Returns false if the index is not beyond the current snapshot.
    /// </summary>
    public bool Compact(ulong index, byte[] stateMachineData)
    {
        ArgumentNullException.ThrowIfNull(stateMachineData);
        if (index > log.Applied) throw new ArgumentOutOfRangeException(nameof(index), $"compact index {index} beyond applied {log.Applied}");
        if (stateMachineData.Length > RaftCodec.MaxSnapshotBytes) throw new ArgumentOutOfRangeException(nameof(stateMachineData), $"snapshot of {stateMachineData.Length} bytes exceeds the wire limit {RaftCodec.MaxSnapshotBytes}");
        Snapshot current = storage.Snapshot;
        if (index <= current.Metadata.Index) return false;
        ulong term = storage.Term(index) ?? throw new InvalidOperationException($"entry {index} not in storage");
        ConfState confState = current.Metadata.ConfState;
        foreach (Entry entry in storage.Entries(storage.FirstIndex, index + 1))
        {
            if (entry.Type == EntryType.ConfChange) confState = confState.Apply(ConfChange.Decode(entry.Data));
        }
        storage.Compact(new Snapshot(new SnapshotMetadata(index, term, confState), stateMachineData));
        return true;
    }

    // ---- message handling ----

    public void Step(Message m)
    {
        ArgumentNullException.ThrowIfNull(m);
        if (m.To != Id || m.From == Id || m.From == 0) return;
        if (m.Term > Term)
        {
            if (m.Type is MessageType.Vote or MessageType.PreVote)
            {
                // Leader lease: a follower that heard from a live leader within the minimum election timeout ignores votes.
                bool inLease = LeaderId != 0 && electionElapsed < config.ElectionTicks && (config.CheckQuorum || m.Type == MessageType.PreVote);
                if (inLease && !m.LeaderTransfer) return;
            }
            if (m.Type == MessageType.PreVote || (m.Type == MessageType.PreVoteResponse && !m.Reject))
            {
                // A pre-vote does not change anyone's term; the granted answer carries the term to be campaigned for.
            }
            else if (m.Type is MessageType.Append or MessageType.Heartbeat or MessageType.InstallSnapshot)
            {
                BecomeFollower(m.Term, m.From);
            }
            else
            {
                BecomeFollower(m.Term, 0);
            }
        }
        else if (m.Term < Term)
        {
            if ((config.CheckQuorum || config.PreVote) && m.Type is MessageType.Append or MessageType.Heartbeat)
            {
                // Tell a stale leader about the newer term: with pre-vote our term can exceed its without a vote reaching it.
                Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = Term });
            }
            else if (m.Type == MessageType.PreVote)
            {
                Send(new Message { Type = MessageType.PreVoteResponse, From = Id, To = m.From, Term = Term, Reject = true });
            }
            return;
        }

        if (m.Type is MessageType.Vote or MessageType.PreVote)
        {
            HandleVoteRequest(m);
            return;
        }
        switch (State)
        {
            case RaftState.Leader: StepLeader(m); break;
            case RaftState.Follower: StepFollower(m); break;
            default: StepCandidate(m); break;
        }
    }

    private void HandleVoteRequest(Message m)
    {
        MessageType responseType = m.Type == MessageType.Vote ? MessageType.VoteResponse : MessageType.PreVoteResponse;
        bool canVote = Vote == m.From || (Vote == 0 && LeaderId == 0) || (m.Type == MessageType.PreVote && m.Term > Term);
        // Learners answer too (etcd behaviour): a learner promoted by a committed entry it has not yet learned of may be needed for a quorum; candidates count only voters.
        if (canVote && log.IsUpToDate(m.Index, m.LogTerm))
        {
            Send(new Message { Type = responseType, From = Id, To = m.From, Term = m.Term });
            if (m.Type == MessageType.Vote)
            {
                electionElapsed = 0;
                Vote = m.From;
            }
        }
        else
        {
            Send(new Message { Type = responseType, From = Id, To = m.From, Term = Term, Reject = true });
        }
    }

    private void StepFollower(Message m)
    {
        switch (m.Type)
        {
            case MessageType.Append:
                electionElapsed = 0;
                LeaderId = m.From;
                HandleAppend(m);
                break;
            case MessageType.Heartbeat:
                electionElapsed = 0;
                LeaderId = m.From;
                HandleHeartbeat(m);
                break;
            case MessageType.InstallSnapshot:
                electionElapsed = 0;
                LeaderId = m.From;
                HandleSnapshot(m);
                break;
            case MessageType.TimeoutNow:
                if (Promotable) Hup(transfer: true);
                break;
        }
    }

    private void StepCandidate(Message m)
    {
        MessageType myResponse = State == RaftState.PreCandidate ? MessageType.PreVoteResponse : MessageType.VoteResponse;
        switch (m.Type)
        {
            case MessageType.Append:
                BecomeFollower(m.Term, m.From);
                HandleAppend(m);
                break;
            case MessageType.Heartbeat:
                BecomeFollower(m.Term, m.From);
                HandleHeartbeat(m);
                break;
            case MessageType.InstallSnapshot:
                BecomeFollower(m.Term, m.From);
                HandleSnapshot(m);
                break;
            case var type when type == myResponse:
                switch (Poll(m.From, !m.Reject))
                {
                    case ElectionResult.Won:
                        if (State == RaftState.PreCandidate) StartCampaign(preVote: false, transfer: false);
                        else
                        {
                            BecomeLeader();
                            BroadcastAppend();
                        }
                        break;
                    case ElectionResult.Lost:
                        BecomeFollower(Term, 0);
                        break;
                }
                break;
        }
    }

    private void StepLeader(Message m)
    {
        if (!progress.TryGetValue(m.From, out Progress? pr)) return;
        switch (m.Type)
        {
            case MessageType.AppendResponse:
                pr.RecentActive = true;
                if (m.Reject)
                {
                    ulong nextProbe = m.RejectHint;
                    if (m.LogTerm > 0) nextProbe = log.FindConflictByTerm(Math.Min(m.RejectHint, log.LastIndex), m.LogTerm).Index;
                    if (pr.MaybeDecreaseTo(m.Index, nextProbe))
                    {
                        if (pr.State == ReplicationState.Replicate) pr.BecomeProbe();
                        SendAppend(m.From);
                    }
                    return;
                }
                bool wasPaused = pr.IsPaused;
                if (!pr.MaybeUpdate(m.Index)) return;
                switch (pr.State)
                {
                    case ReplicationState.Probe:
                        pr.BecomeReplicate();
                        break;
                    case ReplicationState.Snapshot when pr.Match + 1 >= log.FirstIndex:
                        pr.BecomeProbe();
                        pr.BecomeReplicate();
                        break;
                    case ReplicationState.Replicate:
                        pr.FreeInflightUpTo(m.Index);
                        break;
                }
                if (!LeaderMaybeCommit() && wasPaused && State == RaftState.Leader) SendAppend(m.From);
                if (State != RaftState.Leader || !progress.ContainsKey(m.From)) return;
                while (MaybeSendAppend(m.From, sendIfEmpty: false)) { }
                if (m.From == leadTransferee && pr.Match == log.LastIndex) Send(new Message { Type = MessageType.TimeoutNow, From = Id, To = m.From, Term = Term });
                break;
            case MessageType.HeartbeatResponse:
                pr.RecentActive = true;
                pr.ProbeSent = false;
                if (m.Context != 0) ConfirmRead(m.Context, m.From);
                if (pr.State == ReplicationState.Replicate && pr.InflightFull) pr.FreeFirstInflight();
                if (pr.Match < log.LastIndex) SendAppend(m.From);
                break;
        }
    }

    private void HandleAppend(Message m)
    {
        if (m.Index < log.Committed)
        {
            Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = Term, Index = log.Committed });
            return;
        }
        if (log.MaybeAppend(m.Index, m.LogTerm, m.Entries) is ({ } lastNew, { } appended))
        {
            OnAppended(appended);
            CommitTo(Math.Min(m.Commit, lastNew));
            Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = Term, Index = lastNew });
            return;
        }
        // Fast backtracking: point the leader at our last entry whose term is ≤ the term it probed with.
        (ulong hintIndex, ulong hintTerm) = log.FindConflictByTerm(Math.Min(m.Index, log.LastIndex), m.LogTerm);
        Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = Term, Index = m.Index, Reject = true, RejectHint = hintIndex, LogTerm = hintTerm });
    }

    private void HandleHeartbeat(Message m)
    {
        if (m.Commit <= log.LastIndex) CommitTo(m.Commit);
        Send(new Message { Type = MessageType.HeartbeatResponse, From = Id, To = m.From, Term = Term, Context = m.Context });
    }

    private void HandleSnapshot(Message m)
    {
        if (m.Snapshot is not { } snapshot) return;
        ulong index = snapshot.Metadata.Index;
        if (index <= log.Committed)
        {
            Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = Term, Index = log.Committed });
            return;
        }
        if (log.MatchTerm(index, snapshot.Metadata.Term))
        {
            // Our log already holds the snapshot's last entry: just fast-forward the commit.
            CommitTo(index);
        }
        else
        {
            log.Restore(snapshot);
            baseConf = snapshot.Metadata.ConfState;
            confEntries.Clear();
            RecomputeConf();
        }
        // Acknowledge the snapshot's index only: entries past it were not checked against the leader's log.
        Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = Term, Index = index });
    }

    // ---- roles ----

    private void TickElection()
    {
        electionElapsed++;
        if (Promotable && electionElapsed >= randomizedElectionTimeout)
        {
            electionElapsed = 0;
            Hup(transfer: false);
        }
    }

    private void TickLeader()
    {
        heartbeatElapsed++;
        electionElapsed++;
        if (electionElapsed >= config.ElectionTicks)
        {
            electionElapsed = 0;
            if (config.CheckQuorum)
            {
                int active = ConfState.Voters.Count(v => v == Id || (progress.TryGetValue(v, out Progress? p) && p.RecentActive));
                if (active < Quorum)
                {
                    BecomeFollower(Term, 0);
                    return;
                }
                foreach ((ulong id, Progress p) in progress) p.RecentActive = id == Id;
            }
            leadTransferee = 0;
        }
        foreach ((ulong id, Progress p) in progress)
        {
            if (id == Id || p.State != ReplicationState.Snapshot) continue;
            // The snapshot or its answer may have been lost: fall back to probing, which resends it if still needed.
            if (++p.SnapshotTicks >= config.ElectionTicks) p.BecomeProbe();
        }
        if (heartbeatElapsed >= config.HeartbeatTicks)
        {
            heartbeatElapsed = 0;
            foreach ((ulong id, Progress p) in progress)
            {
                if (id != Id) Send(new Message { Type = MessageType.Heartbeat, From = Id, To = id, Term = Term, Commit = Math.Min(p.Match, log.Committed) });
            }
        }
    }

    private void Hup(bool transfer)
    {
        if (State == RaftState.Leader || !Promotable) return;
        StartCampaign(preVote: config.PreVote && !transfer, transfer);
    }

    private void StartCampaign(bool preVote, bool transfer)
    {
        ulong voteTerm;
        MessageType type;
        if (preVote)
        {
            BecomePreCandidate();
            voteTerm = Term + 1;
            type = MessageType.PreVote;
        }
        else
        {
            BecomeCandidate();
            voteTerm = Term;
            type = MessageType.Vote;
        }
        if (Poll(Id, granted: true) == ElectionResult.Won)
        {
            if (preVote) StartCampaign(preVote: false, transfer);
            else BecomeLeader();
            return;
        }
        foreach (ulong voter in ConfState.Voters)
        {
            if (voter == Id) continue;
            Send(new Message { Type = type, From = Id, To = voter, Term = voteTerm, Index = log.LastIndex, LogTerm = log.LastTerm, LeaderTransfer = transfer });
        }
    }

    private enum ElectionResult
    {
        Pending,
        Won,
        Lost,
    }

    private ElectionResult Poll(ulong from, bool granted)
    {
        votes.TryAdd(from, granted);
        int yes = 0, no = 0;
        foreach (ulong voter in ConfState.Voters)
        {
            if (!votes.TryGetValue(voter, out bool vote)) continue;
            if (vote) yes++;
            else no++;
        }
        return yes >= Quorum ? ElectionResult.Won : no >= Quorum ? ElectionResult.Lost : ElectionResult.Pending;
    }

    private void Reset(ulong term)
    {
        if (term != Term)
        {
            Term = term;
            Vote = 0;
        }
        LeaderId = 0;
        electionElapsed = 0;
        heartbeatElapsed = 0;
        randomizedElectionTimeout = config.ElectionTicks + random.Next(config.ElectionTicks);
        leadTransferee = 0;
        votes.Clear();
        progress.Clear();
        pendingConfIndex = 0;
        pendingReads.Clear();
    }

    private void BecomeFollower(ulong term, ulong leader)
    {
        Reset(term);
        LeaderId = leader;
        State = RaftState.Follower;
    }

    private void BecomePreCandidate()
    {
        // Not a Reset: the term and vote stay; only the round's state changes.
        State = RaftState.PreCandidate;
        votes.Clear();
        progress.Clear();
        LeaderId = 0;
        electionElapsed = 0;
        randomizedElectionTimeout = config.ElectionTicks + random.Next(config.ElectionTicks);
    }

    private void BecomeCandidate()
    {
        Reset(Term + 1);
        Vote = Id;
        State = RaftState.Candidate;
    }

    private void BecomeLeader()
    {
        Reset(Term);
        LeaderId = Id;
        State = RaftState.Leader;
        foreach (ulong member in ConfState.Voters.Concat(ConfState.Learners)) AddProgress(member);
        if (progress.TryGetValue(Id, out Progress? self)) self.Match = log.StableLastIndex;
        // The no-op entry of the new term lets earlier-term entries commit (figure 8); no conf change until it commits.
        AppendEntry(EntryType.Normal, []);
        pendingConfIndex = log.LastIndex;
    }

    private void AddProgress(ulong member)
    {
        if (progress.ContainsKey(member)) return;
        progress[member] = new Progress(log.LastIndex + 1, config.MaxInflightMessages, ConfState.IsLearner(member));
    }

    // ---- replication ----

    private ProposeResult ProposeEntry(EntryType type, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (type == EntryType.ConfChange && ConfChange.Decode(data).NodeId == 0) throw new ArgumentException("node id 0 is reserved", nameof(data));
        if (data.Length > RaftCodec.MaxEntryBytes) return new ProposeResult(ProposeStatus.TooLarge, 0, Term, LeaderId);
        if (State != RaftState.Leader || !progress.ContainsKey(Id)) return new ProposeResult(ProposeStatus.NotLeader, 0, Term, State == RaftState.Leader ? 0 : LeaderId);
        if (leadTransferee != 0) return new ProposeResult(ProposeStatus.TransferInProgress, 0, Term, leadTransferee);
        if (type == EntryType.ConfChange)
        {
            if (pendingConfIndex > log.Committed) return new ProposeResult(ProposeStatus.ConfChangePending, 0, Term, Id);
        }
        ulong index = AppendEntry(type, data);
        if (type == EntryType.ConfChange) pendingConfIndex = index;
        BroadcastAppend();
        return new ProposeResult(ProposeStatus.Accepted, index, Term, Id);
    }

    private ulong AppendEntry(EntryType type, byte[] data)
    {
        ulong index = log.LastIndex + 1;
        Entry entry = new(Term, index, type, data);
        log.Append([entry]);
        OnAppended([entry]);
        return index;
    }

    private void BroadcastAppend()
    {
        foreach (ulong id in progress.Keys.ToList())
        {
            if (id != Id) SendAppend(id);
        }
    }

    private void SendAppend(ulong to) => MaybeSendAppend(to, sendIfEmpty: true);

    private bool MaybeSendAppend(ulong to, bool sendIfEmpty)
    {
        if (!progress.TryGetValue(to, out Progress? pr) || pr.IsPaused) return false;
        ulong previous = pr.Next - 1;
        ulong? previousTerm = log.Term(previous);
        List<Entry>? entries = log.Slice(pr.Next, log.LastIndex + 1, config.MaxEntriesPerMessage);
        if (entries is not null) TrimToByteLimit(entries);
        if (previousTerm is null || entries is null)
        {
            // The follower needs entries we compacted away.
            if (!pr.RecentActive) return false;
            Snapshot snapshot = log.Snapshot;
            pr.BecomeSnapshot(snapshot.Metadata.Index);
            Send(new Message { Type = MessageType.InstallSnapshot, From = Id, To = to, Term = Term, Snapshot = snapshot });
            return true;
        }
        if (entries.Count == 0 && !sendIfEmpty) return false;
        Send(new Message { Type = MessageType.Append, From = Id, To = to, Term = Term, Index = previous, LogTerm = previousTerm.Value, Entries = entries, Commit = log.Committed });
        if (pr.State == ReplicationState.Replicate && entries.Count > 0) pr.OptimisticUpdate(entries[^1].Index);
        else if (pr.State == ReplicationState.Probe) pr.ProbeSent = true;
        return true;
    }

    private void ConfirmRead(ulong requestId, ulong from)
    {
        int position = pendingReads.FindIndex(r => r.RequestId == requestId);
        if (position < 0 || !ConfState.IsVoter(from)) return;
        pendingReads[position].Acks.Add(from);
        if (pendingReads[position].Acks.Count(ConfState.IsVoter) < Quorum) return;
        // Leadership held at this round's time also covers every earlier request.
        for (int i = 0; i <= position; i++) readStates.Add(new ReadState(pendingReads[i].RequestId, pendingReads[i].Index));
        pendingReads.RemoveRange(0, position + 1);
    }

    private void TrimToByteLimit(List<Entry> entries)
    {
        long bytes = 0;
        for (int i = 0; i < entries.Count; i++)
        {
            bytes += entries[i].Data.Length;
            if (i > 0 && bytes > config.MaxBytesPerMessage)
            {
                entries.RemoveRange(i, entries.Count - i);
                return;
            }
        }
    }

    /// <summary>Commits what a quorum of voters persisted, if of the current term (figure 8); then tells followers.</summary>
    private bool LeaderMaybeCommit()
    {
        bool committed = false;
        while (State == RaftState.Leader)
        {
            var matches = ConfState.Voters.Select(v => progress.TryGetValue(v, out Progress? p) ? p.Match : 0).OrderDescending().ToList();
            if (matches.Count == 0) break;
            ulong quorumIndex = matches[Quorum - 1];
            if (quorumIndex <= log.Committed || log.Term(quorumIndex) != Term) break;
            CommitTo(quorumIndex);
            committed = true;
        }
        if (!committed) return false;
        SyncProgress();
        BroadcastAppend();
        if (!ConfState.IsVoter(Id) && LastConfIndex <= log.Committed) StepDownAfterRemoval();
        return true;
    }

    private void StepDownAfterRemoval()
    {
        // Hand over to the most up-to-date voter so the cluster does not wait an election timeout.
        ulong best = ConfState.Voters.Where(progress.ContainsKey).OrderByDescending(v => progress[v].Match).FirstOrDefault();
        if (best != 0 && progress[best].Match == log.LastIndex) Send(new Message { Type = MessageType.TimeoutNow, From = Id, To = best, Term = Term });
        BecomeFollower(Term, 0);
    }

    private void CommitTo(ulong index)
    {
        if (index > log.Committed) log.CommitTo(index);
    }

    private ulong LastConfIndex => confEntries.Count > 0 ? confEntries[^1].Index : 0;

    /// <summary>Entries were written to the log from appended[0].Index on (replacing any suffix): membership follows the log.</summary>
    private void OnAppended(IReadOnlyList<Entry> appended)
    {
        if (appended.Count == 0) return;
        ulong from = appended[0].Index;
        bool changed = confEntries.RemoveAll(c => c.Index >= from) > 0;
        foreach (Entry entry in appended)
        {
            if (entry.Type != EntryType.ConfChange) continue;
            confEntries.Add((entry.Index, ConfChange.Decode(entry.Data)));
            changed = true;
        }
        if (changed) RecomputeConf();
    }

    private void RecomputeConf()
    {
        ConfState conf = baseConf;
        foreach ((_, ConfChange change) in confEntries) conf = conf.Apply(change);
        ConfState = conf;
        if (State == RaftState.Leader) SyncProgress();
    }

    /// <summary>Leader: track every member; keep replicating to a removed node until its removal commits, so it learns of it.</summary>
    private void SyncProgress()
    {
        foreach (ulong member in ConfState.Voters.Concat(ConfState.Learners)) AddProgress(member);
        foreach (ulong id in progress.Keys.ToList())
        {
            if (ConfState.Contains(id))
            {
                progress[id].IsLearner = ConfState.IsLearner(id);
                continue;
            }
            if (id == Id || LastConfIndex > log.Committed) continue;
            progress.Remove(id);
            if (leadTransferee == id) leadTransferee = 0;
        }
    }

    private void Send(Message message) => messages.Add(message);
}
