using P2PReplay.Consensus;
using P2PReplay.Consensus.Storage;

namespace P2PReplay.Tests.Consensus;

/// <summary>Named scenarios from the Raft paper and dissertation.</summary>
public sealed class RaftScenarioTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "p2preplay-raft-scenario-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    private static (RaftNode Node, MemoryRaftStorage Storage) StandaloneNode(ulong id, ulong[] voters, Entry[] entries, HardState hardState, RaftConfig? config = null)
    {
        var storage = new MemoryRaftStorage();
        storage.Save(hardState, entries, new Snapshot(new SnapshotMetadata(0, 0, new ConfState(voters, [])), []));
        return (new RaftNode(config ?? new RaftConfig { Id = id }, storage, new Random(1)), storage);
    }

    private static List<Message> Drain(RaftNode node, IRaftStorage storage)
    {
        List<Message> sent = [];
        while (node.HasReady)
        {
            Ready ready = node.TakeReady();
            storage.Save(ready.HardState, ready.Entries, ready.Snapshot);
            sent.AddRange(ready.Messages);
            node.Advance(ready);
        }
        return sent;
    }

    [Fact]
    public void Figure_8_old_term_entries_commit_only_with_a_current_term_entry()
    {
        // Node 1 holds an entry of term 2 that was never committed; it wins term 3.
        (RaftNode node, MemoryRaftStorage storage) = StandaloneNode(1, [1, 2, 3, 4, 5], [new Entry(1, 1, EntryType.Normal, [1]), new Entry(2, 2, EntryType.Normal, [2])], new HardState(2, 0, 1));
        node.Campaign();
        Assert.All(Drain(node, storage), m => Assert.Equal((MessageType.PreVote, 3UL), (m.Type, m.Term)));
        foreach (ulong peer in new ulong[] { 2, 3 }) node.Step(new Message { Type = MessageType.PreVoteResponse, From = peer, To = 1, Term = 3 });
        Assert.Equal(RaftState.Candidate, node.State);
        Drain(node, storage);
        foreach (ulong peer in new ulong[] { 2, 3 }) node.Step(new Message { Type = MessageType.VoteResponse, From = peer, To = 1, Term = 3 });
        Assert.Equal(RaftState.Leader, node.State);
        Drain(node, storage);
        Assert.Equal(3UL, node.LastIndex);

        // A majority (1, 2, 3) now stores the term-2 entry, but counting replicas must not commit it (figure 8).
        foreach (ulong peer in new ulong[] { 2, 3 }) node.Step(new Message { Type = MessageType.AppendResponse, From = peer, To = 1, Term = 3, Index = 2 });
        Drain(node, storage);
        Assert.Equal(1UL, node.Commit);

        // Once the term-3 entry is on a majority, both commit.
        node.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 3, Index = 3 });
        Assert.Equal(1UL, node.Commit);
        node.Step(new Message { Type = MessageType.AppendResponse, From = 3, To = 1, Term = 3, Index = 3 });
        Assert.Equal(3UL, node.Commit);
    }

    [Fact]
    public void Leader_counts_itself_only_for_persisted_entries()
    {
        (RaftNode node, MemoryRaftStorage storage) = StandaloneNode(1, [1, 2, 3], [], default);
        node.Campaign();
        Drain(node, storage);
        node.Step(new Message { Type = MessageType.PreVoteResponse, From = 2, To = 1, Term = 1 });
        Drain(node, storage);
        node.Step(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 1 });
        Drain(node, storage);
        ulong index = node.Propose([9]).Index;
        Ready ready = node.TakeReady();
        // Not yet persisted by the leader: one follower's ack is not a majority.
        node.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = index });
        Assert.True(node.Commit < index);
        storage.Save(ready.HardState, ready.Entries, ready.Snapshot);
        node.Advance(ready);
        Assert.Equal(index, node.Commit);
    }

    [Fact]
    public void Pre_vote_keeps_a_rejoining_partitioned_node_from_disrupting()
    {
        var cluster = new SimCluster(11, [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        cluster.ProposeAndCommit([1]);
        ulong term = leader.Term;
        ulong loner = cluster.LiveNodes.First(n => n.Id != leader.Id).Id;
        cluster.Isolate(loner);
        cluster.Run(200);
        Assert.Equal(term, cluster.Node(loner).Term);
        cluster.Heal();
        cluster.Run(50);
        Assert.Equal(RaftState.Leader, leader.State);
        Assert.Equal(term, leader.Term);
        Assert.All(cluster.LiveNodes, n => Assert.Equal(term, n.Term));
        cluster.ProposeAndCommit([2]);
    }

    [Fact]
    public void Without_pre_vote_and_check_quorum_a_rejoining_node_does_disrupt()
    {
        var cluster = new SimCluster(12, [1, 2, 3], id => new RaftConfig { Id = id, PreVote = false, CheckQuorum = false });
        RaftNode leader = cluster.ElectLeader();
        ulong term = leader.Term;
        ulong loner = cluster.LiveNodes.First(n => n.Id != leader.Id).Id;
        cluster.Isolate(loner);
        cluster.Run(200);
        Assert.True(cluster.Node(loner).Term > term + 3);
        cluster.Heal();
        cluster.Run(50);
        Assert.True(cluster.LiveNodes.All(n => n.Term > term), "the contrast case should show the disruption pre-vote prevents");
    }

    [Fact]
    public void Check_quorum_makes_a_minority_leader_step_down()
    {
        var cluster = new SimCluster(13, [1, 2, 3, 4, 5]);
        RaftNode leader = cluster.ElectLeader();
        ulong buddy = cluster.LiveNodes.First(n => n.Id != leader.Id).Id;
        cluster.Partition([leader.Id, buddy]);
        cluster.Run(25);
        Assert.NotEqual(RaftState.Leader, leader.State);
        cluster.Run(100);
        RaftNode? majorityLeader = cluster.Leader;
        Assert.NotNull(majorityLeader);
        Assert.DoesNotContain(majorityLeader.Id, new[] { leader.Id, buddy });
    }

    [Fact]
    public void Leader_lease_makes_followers_ignore_a_disruptive_vote()
    {
        // Without pre-vote only the lease protects: node 3 hears nothing from the leader, times out and asks for votes.
        var cluster = new SimCluster(14, [1, 2, 3], id => new RaftConfig { Id = id, PreVote = false });
        cluster.Configure = id => new RaftConfig { Id = id, PreVote = false };
        RaftNode leader = cluster.ElectLeader();
        ulong term = leader.Term;
        ulong disruptor = cluster.LiveNodes.First(n => n.Id != leader.Id).Id;
        cluster.BlockOneWay(leader.Id, disruptor);
        cluster.Run(100);
        Assert.True(cluster.Node(disruptor).Term > term);
        Assert.Equal(RaftState.Leader, leader.State);
        Assert.Equal(term, leader.Term);
        Assert.All(cluster.LiveNodes.Where(n => n.Id != disruptor), n => Assert.Equal(term, n.Term));

        // Directly: a follower that just heard from the leader drops a higher-term vote request without answering.
        RaftNode follower = cluster.LiveNodes.First(n => n.Id != leader.Id && n.Id != disruptor);
        follower.Step(new Message { Type = MessageType.Vote, From = disruptor, To = follower.Id, Term = term + 10, Index = follower.LastIndex, LogTerm = follower.TermAt(follower.LastIndex)!.Value });
        Assert.Equal(term, follower.Term);
        Assert.DoesNotContain(follower.HasReady ? follower.TakeReady().Messages : [], m => m.Type == MessageType.VoteResponse);
    }

    [Fact]
    public void Lagging_follower_receives_a_snapshot()
    {
        var cluster = new SimCluster(15, [1, 2, 3]) { CompactEvery = 10 };
        RaftNode leader = cluster.ElectLeader();
        ulong lagger = cluster.LiveNodes.First(n => n.Id != leader.Id).Id;
        cluster.Isolate(lagger);
        for (int i = 0; i < 40; i++) leader.Propose([(byte)i]);
        cluster.Run(30);
        Assert.True(leader.FirstIndex > cluster.Node(lagger).LastIndex + 1, "the leader must have compacted past the lagger");
        cluster.Heal();
        cluster.Run(60);
        Assert.True(cluster.Peers[lagger].Storage.Snapshot.Metadata.Index > 0);
        Assert.Equal(leader.Commit, cluster.Node(lagger).Commit);
        Assert.Equal(leader.Applied, cluster.Peers[lagger].AppliedIndex);
        cluster.ProposeAndCommit([0xFF]);
    }

    private static void ChangeMembership(SimCluster cluster, ConfChange change, int maxTicks = 600)
    {
        for (int tick = 0; tick < maxTicks; tick++)
        {
            if (cluster.Leader is { } leader && leader.ProposeConfChange(change) is { Accepted: true } result)
            {
                for (int wait = 0; wait < maxTicks; wait++)
                {
                    cluster.Step();
                    RaftNode? current = cluster.Leader;
                    if (current is not null && current.Commit >= result.Index && current.ConfState.Voters.All(v => cluster.Peers[v].Node?.Commit >= result.Index)) return;
                }
                throw new InvalidOperationException($"{change} did not commit");
            }
            cluster.Step();
        }
        throw new InvalidOperationException($"{change} was never accepted");
    }

    [Fact]
    public void Add_learner_promote_it_then_remove_the_leader()
    {
        var cluster = new SimCluster(16, [1, 2, 3]);
        cluster.ElectLeader();
        cluster.ProposeAndCommit([1]);
        cluster.Add(4);
        ChangeMembership(cluster, new ConfChange(ConfChangeType.AddLearner, 4));
        cluster.ProposeAndCommit([2]);
        Assert.True(cluster.Node(4).ConfState.IsLearner(4));
        Assert.Equal(cluster.Leader!.Commit, cluster.Node(4).Commit);

        ChangeMembership(cluster, new ConfChange(ConfChangeType.PromoteLearner, 4));
        cluster.ProposeAndCommit([3]);
        Assert.All(cluster.LiveNodes, n => Assert.Equal([1UL, 2, 3, 4], n.ConfState.Voters));

        RaftNode oldLeader = cluster.Leader!;
        ChangeMembership(cluster, new ConfChange(ConfChangeType.Remove, oldLeader.Id));
        cluster.Run(50);
        RaftNode newLeader = cluster.ElectLeader();
        Assert.NotEqual(oldLeader.Id, newLeader.Id);
        Assert.DoesNotContain(oldLeader.Id, newLeader.ConfState.Voters);
        cluster.ProposeAndCommit([4]);
        // The removed node knows it is out and stays quiet.
        ulong termBefore = newLeader.Term;
        cluster.Isolate(oldLeader.Id);
        cluster.Run(200);
        Assert.Equal(RaftState.Follower, oldLeader.State);
        Assert.False(oldLeader.Promotable);
        cluster.Heal();
        cluster.Run(20);
        Assert.Equal(termBefore, newLeader.Term);
        Assert.Equal(RaftState.Leader, newLeader.State);
    }

    [Fact]
    public void Remove_a_follower_and_keep_committing()
    {
        var cluster = new SimCluster(17, [1, 2, 3, 4, 5]);
        RaftNode leader = cluster.ElectLeader();
        ulong victim = cluster.LiveNodes.Last(n => n.Id != leader.Id).Id;
        ChangeMembership(cluster, new ConfChange(ConfChangeType.Remove, victim));
        cluster.Crash(victim);
        // 4 voters left: two more failures would block, one does not.
        cluster.Crash(cluster.LiveNodes.First(n => n.State != RaftState.Leader).Id);
        cluster.ProposeAndCommit([5]);
    }

    [Fact]
    public void Learner_never_campaigns_and_is_not_counted()
    {
        var cluster = new SimCluster(18, [1, 2, 3], bootstrapVoters: [1, 2]);
        cluster.ElectLeader();
        ChangeMembership(cluster, new ConfChange(ConfChangeType.AddLearner, 3));
        cluster.ProposeAndCommit([1]);
        RaftNode learner = cluster.Node(3);
        Assert.True(learner.ConfState.IsLearner(3));

        // Alone, a learner never campaigns.
        ulong term = learner.Term;
        cluster.Isolate(3);
        for (int i = 0; i < 200; i++)
        {
            cluster.Step();
            Assert.Equal(RaftState.Follower, learner.State);
        }
        Assert.Equal(term, learner.Term);
        cluster.Heal();
        cluster.Run(20);

        // With one of two voters cut off, the other voter plus the learner is not a quorum: no commit, no leader.
        RaftNode leader = cluster.ElectLeader();
        ulong otherVoter = leader.Id == 1 ? 2UL : 1UL;
        cluster.Isolate(otherVoter);
        ulong index = leader.Propose([2]).Index;
        for (int i = 0; i < 300; i++)
        {
            cluster.Step();
            Assert.True(leader.Commit < index);
            Assert.True(learner.Commit < index);
            Assert.DoesNotContain(cluster.LiveNodes, n => n.State == RaftState.Leader && n.Term > term + 2 && n.Id != otherVoter && n.Id != leader.Id);
        }
        Assert.NotEqual(RaftState.Leader, leader.State);
        cluster.Heal();
        cluster.ProposeAndCommit([3]);
    }

    [Fact]
    public void Learners_do_not_keep_a_leader_alive_under_check_quorum()
    {
        var cluster = new SimCluster(22, [1, 2, 3, 4], bootstrapVoters: [1, 2]);
        RaftNode leader = cluster.ElectLeader();
        cluster.ProposeAndCommit([0]);
        ChangeMembership(cluster, new ConfChange(ConfChangeType.AddLearner, 3));
        ChangeMembership(cluster, new ConfChange(ConfChangeType.AddLearner, 4));
        leader = cluster.Leader!;
        ulong otherVoter = leader.Id == 1 ? 2UL : 1UL;
        // The leader still hears from both learners, but only one of two voters: it must step down.
        cluster.BlockOneWay(otherVoter, leader.Id);
        cluster.BlockOneWay(leader.Id, otherVoter);
        cluster.Run(25);
        Assert.NotEqual(RaftState.Leader, leader.State);
    }

    [Fact]
    public void Pre_vote_is_refused_while_a_leader_is_live()
    {
        var cluster = new SimCluster(23, [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        RaftNode follower = cluster.LiveNodes.First(n => n.Id != leader.Id);
        ulong asker = cluster.LiveNodes.First(n => n.Id != leader.Id && n.Id != follower.Id).Id;
        cluster.Run(3);
        follower.Step(new Message { Type = MessageType.PreVote, From = asker, To = follower.Id, Term = leader.Term + 1, Index = follower.LastIndex + 100, LogTerm = leader.Term });
        Assert.DoesNotContain(follower.HasReady ? follower.TakeReady().Messages : [], m => m.Type == MessageType.PreVoteResponse && !m.Reject);
    }

    [Fact]
    public void Leadership_transfer_hands_over_to_the_target()
    {
        var cluster = new SimCluster(19, [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        cluster.ProposeAndCommit([1]);
        ulong target = cluster.LiveNodes.First(n => n.Id != leader.Id).Id;
        Assert.True(leader.TransferLeadership(target));
        Assert.Equal(ProposeStatus.TransferInProgress, leader.Propose([2]).Status);
        cluster.Run(5);
        Assert.Equal(RaftState.Leader, cluster.Node(target).State);
        Assert.NotEqual(RaftState.Leader, leader.State);
        cluster.ProposeAndCommit([3]);
    }

    [Fact]
    public void Leadership_transfer_catches_a_lagging_target_up_first()
    {
        var cluster = new SimCluster(20, [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        ulong target = cluster.LiveNodes.First(n => n.Id != leader.Id).Id;
        cluster.Isolate(target);
        for (int i = 0; i < 10; i++) leader.Propose([(byte)i]);
        cluster.Run(3);
        cluster.Heal();
        Assert.True(leader.TransferLeadership(target));
        cluster.Run(10);
        Assert.Equal(RaftState.Leader, cluster.Node(target).State);
    }

    [Fact]
    public void Restart_from_file_storage_mid_cluster()
    {
        var cluster = new SimCluster(21, [1, 2, 3], openStorage: id => new FileRaftStorage(Path.Combine(root, id.ToString(System.Globalization.CultureInfo.InvariantCulture)))) { CompactEvery = 8 };
        cluster.ElectLeader();
        for (int i = 0; i < 20; i++) cluster.ProposeAndCommit([(byte)i]);
        ulong follower = cluster.LiveNodes.First(n => n.State != RaftState.Leader).Id;
        cluster.Crash(follower);
        for (int i = 20; i < 30; i++) cluster.ProposeAndCommit([(byte)i]);
        cluster.Restart(follower);
        ulong last = cluster.ProposeAndCommit([30]);
        Assert.True(cluster.Node(follower).Applied >= last);

        // Everyone down at once, then back from disk alone.
        Dictionary<ulong, ulong> commits = cluster.LiveNodes.ToDictionary(n => n.Id, n => n.Commit);
        foreach (ulong id in cluster.Peers.Keys) cluster.Crash(id);
        cluster.DropInFlight();
        foreach (ulong id in cluster.Peers.Keys) cluster.Restart(id);
        Assert.All(cluster.LiveNodes, n => Assert.True(n.Commit >= commits[n.Id], $"node {n.Id} commit went back from {commits[n.Id]} to {n.Commit}"));
        cluster.ElectLeader();
        ulong after = cluster.ProposeAndCommit([31]);
        Assert.True(after > last);
        foreach (SimPeer peer in cluster.Peers.Values) ((IDisposable)peer.Storage).Dispose();
    }
}
