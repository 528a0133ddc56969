using P2PReplay.Consensus;
using P2PReplay.Consensus.Storage;

namespace P2PReplay.Tests.Consensus;

/// <summary>Membership follows the log: effective on append, undone on truncation, replayed on restart.</summary>
public sealed class RaftMembershipTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "p2preplay-raft-membership-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    private static RaftNode Follower(ulong id, ulong[] voters, out MemoryRaftStorage storage)
    {
        storage = new MemoryRaftStorage();
        storage.Save(new HardState(1, 0, 1), [new Entry(1, 1, EntryType.Normal, [])], new Snapshot(new SnapshotMetadata(0, 0, new ConfState(voters, [])), []));
        return new RaftNode(new RaftConfig { Id = id }, storage, new Random(3));
    }

    [Fact]
    public void Conf_change_takes_effect_on_append_and_is_undone_by_truncation()
    {
        RaftNode follower = Follower(2, [1, 2, 3], out _);
        follower.Step(new Message
        {
            Type = MessageType.Append, From = 1, To = 2, Term = 1, Index = 1, LogTerm = 1, Commit = 1,
            Entries = [new Entry(1, 2, EntryType.ConfChange, new ConfChange(ConfChangeType.AddVoter, 4).Encode())],
        });
        Assert.Equal([1UL, 2, 3, 4], follower.ConfState.Voters);
        Assert.Equal(1UL, follower.Commit);

        // A new leader of term 2 never had that entry and overwrites index 2.
        follower.Step(new Message
        {
            Type = MessageType.Append, From = 3, To = 2, Term = 2, Index = 1, LogTerm = 1, Commit = 2,
            Entries = [new Entry(2, 2, EntryType.Normal, [7])],
        });
        Assert.Equal([1UL, 2, 3], follower.ConfState.Voters);
        Assert.Equal(2UL, follower.Commit);
    }

    [Fact]
    public void Removed_follower_stops_campaigning_once_it_appends_its_removal()
    {
        RaftNode follower = Follower(3, [1, 2, 3], out _);
        Assert.True(follower.Promotable);
        follower.Step(new Message
        {
            Type = MessageType.Append, From = 1, To = 3, Term = 1, Index = 1, LogTerm = 1, Commit = 1,
            Entries = [new Entry(1, 2, EntryType.ConfChange, new ConfChange(ConfChangeType.Remove, 3).Encode())],
        });
        Assert.False(follower.Promotable);
        for (int i = 0; i < 100; i++) follower.Tick();
        Assert.Equal(RaftState.Follower, follower.State);
        Assert.Equal(1UL, follower.Term);
    }

    [Fact]
    public void Only_one_conf_change_is_pending_at_a_time()
    {
        var cluster = new SimCluster(31, [1, 2, 3, 4], bootstrapVoters: [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        cluster.ProposeAndCommit([1]);
        Assert.True(leader.ProposeConfChange(new ConfChange(ConfChangeType.AddLearner, 4)).Accepted);
        Assert.Equal(ProposeStatus.ConfChangePending, leader.ProposeConfChange(new ConfChange(ConfChangeType.PromoteLearner, 4)).Status);
        cluster.Run(10);
        Assert.True(leader.ProposeConfChange(new ConfChange(ConfChangeType.PromoteLearner, 4)).Accepted);
        cluster.Run(10);
        Assert.All(cluster.LiveNodes, n => Assert.Equal([1UL, 2, 3, 4], n.ConfState.Voters));
    }

    [Fact]
    public void Membership_survives_a_full_restart_from_disk()
    {
        var cluster = new SimCluster(32, [1, 2, 3, 4], bootstrapVoters: [1, 2, 3], openStorage: id => new FileRaftStorage(Path.Combine(root, id.ToString(System.Globalization.CultureInfo.InvariantCulture)))) { CompactEvery = 5 };
        RaftNode leader = cluster.ElectLeader();
        cluster.ProposeAndCommit([0]);
        Assert.True(leader.ProposeConfChange(new ConfChange(ConfChangeType.AddLearner, 4)).Accepted);
        cluster.Run(10);
        Assert.True(leader.ProposeConfChange(new ConfChange(ConfChangeType.PromoteLearner, 4)).Accepted);
        cluster.Run(10);
        Assert.True(leader.ProposeConfChange(new ConfChange(ConfChangeType.Remove, 1)).Accepted);
        for (int i = 0; i < 10; i++) cluster.ProposeAndCommit([(byte)i]);
        foreach (ulong id in cluster.Peers.Keys) cluster.Crash(id);
        cluster.DropInFlight();
        foreach (ulong id in cluster.Peers.Keys) cluster.Restart(id);
        Assert.All(cluster.LiveNodes.Where(n => n.Id != 1), n => Assert.Equal([2UL, 3, 4], n.ConfState.Voters));
        Assert.True(cluster.Peers[2].Storage.Snapshot.Metadata.Index > 0, "the restart must also cover a snapshot's membership");
        RaftNode newLeader = cluster.ElectLeader();
        Assert.NotEqual(1UL, newLeader.Id);
        cluster.ProposeAndCommit([99]);
        foreach (SimPeer peer in cluster.Peers.Values) ((IDisposable)peer.Storage).Dispose();
    }

    [Fact]
    public void Snapshot_matching_our_log_acknowledges_only_its_own_index()
    {
        var storage = new MemoryRaftStorage();
        ConfState conf = new([1, 2, 3], []);
        storage.Save(new HardState(2, 0, 2), [.. new ulong[] { 1, 1, 1, 2, 2 }.Select((term, i) => new Entry(term, (ulong)i + 1, EntryType.Normal, []))], new Snapshot(new SnapshotMetadata(0, 0, conf), []));
        var follower = new RaftNode(new RaftConfig { Id = 2 }, storage, new Random(1));
        follower.Step(new Message { Type = MessageType.InstallSnapshot, From = 1, To = 2, Term = 3, Snapshot = new Snapshot(new SnapshotMetadata(3, 1, conf), [1]) });
        Message ack = Assert.Single(follower.TakeReady().Messages);
        Assert.Equal((MessageType.AppendResponse, false, 3UL), (ack.Type, ack.Reject, ack.Index));
        Assert.Equal(3UL, follower.Commit);
        Assert.Equal(5UL, follower.LastIndex);
    }

    [Fact]
    public void Ready_must_be_advanced_before_the_next_one_and_steps_in_between_are_kept()
    {
        var cluster = new SimCluster(33, [1]);
        RaftNode node = cluster.ElectLeader();
        ulong first = node.Propose([1]).Index;
        Ready ready = node.TakeReady();
        Assert.False(node.HasReady);
        Assert.Throws<InvalidOperationException>(() => node.TakeReady());
        ulong second = node.Propose([2]).Index;
        cluster.Peers[1].Storage.Save(ready.HardState, ready.Entries, ready.Snapshot);
        node.Advance(ready);
        Assert.True(node.HasReady);
        Ready next = node.TakeReady();
        Assert.Contains(next.Entries, e => e.Index == second);
        Assert.DoesNotContain(next.Entries, e => e.Index == first);
        cluster.Peers[1].Storage.Save(next.HardState, next.Entries, next.Snapshot);
        node.Advance(next);
        Assert.Equal(second, node.Commit);
    }
}
