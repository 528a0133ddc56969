using P2PReplay.Discovery.Gossip;

namespace P2PReplay.Tests.Gossip;

public sealed class GossipNodeTests
{
    [Fact]
    public void Nodes_bootstrap_through_a_seed_and_agree_on_members_and_metadata()
    {
        var sim = new GossipSimulation(seed: 1);
        sim.Bootstrap(8);
        Assert.True(sim.RunUntil(sim.Converged, 5_000), "no convergence within 5 s");
        foreach (GossipSimulation.SimNode node in sim.Nodes)
        {
            Assert.True(node.Node.IsJoined);
            foreach (GossipSimulation.SimNode other in sim.Nodes)
            {
                MemberSnapshot seen = node.Node.Members.Single(m => m.Info.NodeId == other.NodeId);
                Assert.Equal(other.Node.Local, seen.Info);
            }
        }
    }

    [Fact]
    public void A_stopped_node_is_marked_dead_by_every_live_member_within_two_seconds()
    {
        var sim = new GossipSimulation(seed: 2);
        sim.Bootstrap(10);
        Assert.True(sim.RunUntil(sim.Converged, 5_000));
        sim.RunFor(2_000);
        GossipSimulation.SimNode victim = sim.Nodes[4];
        victim.Running = false;
        bool allDead = sim.RunUntil(() => sim.Nodes.Where(n => n.Running).All(n => GossipSimulation.StatusOf(n.Node, victim.NodeId) == MemberStatus.Dead), 2_000);
        Assert.True(allDead, "not every live member marked the stopped node dead within 2 s");
    }
}
