using P2PReplay.Consensus;

namespace P2PReplay.Tests.Consensus;

public sealed class RaftBasicTests
{
    [Fact]
    public void Single_node_elects_itself_and_commits()
    {
        var cluster = new SimCluster(1, [1]);
        RaftNode leader = cluster.ElectLeader();
        Assert.Equal(1UL, leader.Id);
        ulong index = cluster.ProposeAndCommit([42]);
        Assert.Equal([42], cluster.Peers[1].Applied[index].Data);
    }

    [Fact]
    public void Three_nodes_elect_one_leader_and_replicate()
    {
        var cluster = new SimCluster(2, [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        ulong index = cluster.ProposeAndCommit([7]);
        foreach (SimPeer peer in cluster.Peers.Values) Assert.Equal([7], peer.Applied[index].Data);
        Assert.Single(cluster.LiveNodes, n => n.State == RaftState.Leader);
        Assert.All(cluster.LiveNodes, n => Assert.Equal(leader.Id, n.LeaderId));
    }

    [Fact]
    public void Status_reports_leader_progress()
    {
        var cluster = new SimCluster(4, [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        ulong index = cluster.ProposeAndCommit([5]);
        RaftStatus status = leader.Status();
        Assert.Equal((RaftState.Leader, leader.Id, index), (status.State, status.LeaderId, status.Commit));
        Assert.Equal(3, status.Progress.Count);
        Assert.All(status.Progress.Values, p => Assert.Equal(index, p.Match));
        Assert.Empty(cluster.LiveNodes.First(n => n.Id != leader.Id).Status().Progress);
    }

    [Fact]
    public void Follower_rejects_proposal_with_leader_hint()
    {
        var cluster = new SimCluster(3, [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        RaftNode follower = cluster.LiveNodes.First(n => n.Id != leader.Id);
        ProposeResult result = follower.Propose([1]);
        Assert.Equal(ProposeStatus.NotLeader, result.Status);
        Assert.Equal(leader.Id, result.LeaderId);
    }
}

public sealed class RaftReadIndexTests
{
    [Fact]
    public void Leader_serves_a_read_after_a_quorum_heartbeat_round()
    {
        var cluster = new SimCluster(51, [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        ulong index = cluster.ProposeAndCommit([1]);
        List<ReadState> served = [];
        cluster.OnPersisted = (peer, ready) => served.AddRange(ready.ReadStates);
        Assert.True(leader.ReadIndex(7));
        cluster.Stabilize();
        Assert.Equal(new ReadState(7, index), Assert.Single(served));
        Assert.False(cluster.LiveNodes.First(n => n.Id != leader.Id).ReadIndex(8));
    }

    [Fact]
    public void Partitioned_leader_never_serves_a_read()
    {
        var cluster = new SimCluster(52, [1, 2, 3]);
        RaftNode leader = cluster.ElectLeader();
        cluster.ProposeAndCommit([1]);
        List<ReadState> served = [];
        cluster.OnPersisted = (peer, ready) => served.AddRange(ready.ReadStates);
        cluster.Isolate(leader.Id);
        Assert.True(leader.ReadIndex(9));
        cluster.Run(40);
        Assert.Empty(served);
        Assert.NotEqual(RaftState.Leader, leader.State);
    }
}

public sealed class RaftLimitTests
{
    [Fact]
    public void Appends_respect_the_byte_limit_but_always_carry_one_entry()
    {
        var cluster = new SimCluster(41, [1, 2, 3], id => new RaftConfig { Id = id, MaxBytesPerMessage = 1000 });
        RaftNode leader = cluster.ElectLeader();
        List<Message> appends = [];
        cluster.OnPersisted = (peer, ready) => appends.AddRange(ready.Messages.Where(m => m.Type == MessageType.Append));
        for (int i = 0; i < 10; i++) leader.Propose(new byte[400]);
        leader.Propose(new byte[5000]);
        cluster.Run(30);
        Assert.All(appends, m => Assert.True(m.Entries.Count <= 1 || m.Entries.Sum(e => e.Data.Length) <= 1000));
        Assert.Contains(appends, m => m.Entries.Any(e => e.Data.Length == 5000));
        Assert.All(cluster.LiveNodes, n => Assert.Equal(leader.LastIndex, n.Commit));
    }

    [Fact]
    public void Oversized_proposal_is_refused()
    {
        var cluster = new SimCluster(42, [1]);
        RaftNode leader = cluster.ElectLeader();
        Assert.Equal(ProposeStatus.TooLarge, leader.Propose(new byte[RaftCodec.MaxEntryBytes + 1]).Status);
    }
}
