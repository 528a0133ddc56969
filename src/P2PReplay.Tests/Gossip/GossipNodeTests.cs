using P2PReplay.Discovery.Gossip;
using SimNode = P2PReplay.Tests.Gossip.GossipSimulation.SimNode;

namespace P2PReplay.Tests.Gossip;

/// <summary>Membership behaviour on the deterministic simulated network (default config unless stated).</summary>
public sealed class GossipNodeTests
{
    private static GossipSimulation Converged(int n, int seed, GossipConfig? config = null)
    {
        var sim = new GossipSimulation(seed, config);
        sim.Bootstrap(n);
        Assert.True(sim.RunUntil(sim.Converged, 5_000), "no convergence within 5 s of bootstrap");
        return sim;
    }

    private static MemberStatus? Status(SimNode observer, SimNode member) => GossipSimulation.StatusOf(observer.Node, member.NodeId);

    private static IEnumerable<SimNode> LiveOthers(GossipSimulation sim, SimNode except) => sim.Nodes.Where(n => n.Running && n != except);

    [Fact]
    public void Nodes_bootstrap_through_a_seed_and_agree_on_members_and_metadata()
    {
        GossipSimulation sim = Converged(8, seed: 1);
        foreach (SimNode node in sim.Nodes)
        {
            Assert.True(node.Node.IsJoined);
            Assert.Equal(8, node.Node.Members.Count);
            foreach (SimNode other in sim.Nodes)
            {
                MemberSnapshot seen = node.Node.Members.Single(m => m.Info.NodeId == other.NodeId);
                Assert.Equal(other.Node.Local, seen.Info);
                Assert.Equal(MemberStatus.Alive, seen.Status);
            }
        }
        Assert.All(sim.Nodes.Skip(1), n => Assert.Contains(sim.Events, e => e.Observer == n && e.Event.Kind == GossipEventKind.Joined && e.Event.Member.Info.NodeId == sim.Nodes[0].NodeId));
    }

    [Fact]
    public void Join_is_retried_until_a_seed_answers()
    {
        var sim = new GossipSimulation(seed: 11);
        SimNode seed = sim.AddNode();
        seed.Running = false;
        SimNode joiner = sim.AddNode();
        joiner.Node.Join([seed.Address], sim.NowMs);
        sim.RunFor(3_000);
        Assert.False(joiner.Node.IsJoined);
        seed.Running = true;
        Assert.True(sim.RunUntil(() => joiner.Node.IsJoined && sim.Converged(), 3_000));
    }

    [Theory]
    [InlineData(2, 0.0)]
    [InlineData(3, 0.1)]
    public void A_stopped_node_is_marked_dead_by_every_live_member_within_two_seconds(int seed, double loss)
    {
        GossipSimulation sim = Converged(10, seed);
        sim.LossRate = loss;
        sim.RunFor(3_000);
        SimNode victim = sim.Nodes[4];
        victim.Running = false;
        bool allDead = sim.RunUntil(() => LiveOthers(sim, victim).All(n => Status(n, victim) == MemberStatus.Dead), 2_000);
        Assert.True(allDead, "not every live member marked the stopped node dead within 2 s");
        Assert.All(LiveOthers(sim, victim), n => Assert.Contains(sim.Events, e => e.Observer == n && e.Event.Kind == GossipEventKind.Dead && e.Event.Member.Info.NodeId == victim.NodeId));
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void A_briefly_unreachable_node_is_suspected_and_refutes_without_being_declared_dead(int seed)
    {
        GossipSimulation sim = Converged(8, seed);
        sim.RunFor(2_000);
        SimNode flaky = sim.Nodes[3];
        ulong before = flaky.Node.LocalIncarnation;
        int eventsBefore = sim.Events.Count;
        flaky.Isolated = true;
        Assert.True(sim.RunUntil(() => sim.Nodes.Any(n => n != flaky && Status(n, flaky) == MemberStatus.Suspect), 1_000), "never suspected");
        flaky.Isolated = false;
        Assert.True(sim.RunUntil(sim.Converged, 3_000));
        sim.RunFor(2_000);
        var about = sim.Events.Skip(eventsBefore).Where(e => e.Event.Member.Info.NodeId == flaky.NodeId).ToList();
        Assert.DoesNotContain(about, e => e.Event.Kind == GossipEventKind.Dead);
        Assert.Contains(about, e => e.Event.Kind == GossipEventKind.Alive);
        Assert.True(flaky.Node.LocalIncarnation > before);
        Assert.All(sim.Nodes, n => Assert.Equal(flaky.Node.LocalIncarnation, n.Node.Members.Single(m => m.Info.NodeId == flaky.NodeId).Incarnation));
    }

    [Fact]
    public void Both_sides_of_a_healed_partition_see_everyone_alive_again()
    {
        GossipSimulation sim = Converged(10, seed: 7);
        sim.Partition(sim.Nodes.Take(5));
        sim.RunFor(8_000);
        // Each side has declared the other dead by now.
        Assert.All(sim.Nodes.Take(5), n => Assert.All(sim.Nodes.Skip(5), m => Assert.Equal(MemberStatus.Dead, Status(n, m))));
        Assert.All(sim.Nodes.Skip(5), n => Assert.All(sim.Nodes.Take(5), m => Assert.Equal(MemberStatus.Dead, Status(n, m))));
        sim.Heal();
        Assert.True(sim.RunUntil(sim.Converged, 15_000), "partition did not heal within 15 s (push-pull every 5 s)");
    }

    [Fact]
    public void A_partition_outlasting_the_reap_time_heals_through_the_seeds()
    {
        GossipSimulation sim = Converged(10, seed: 17, new GossipConfig { DeadReapMs = 4_000 });
        sim.Partition(sim.Nodes.Skip(5));
        // Long enough for detection (slowed down by Lifeguard: helpers across the cut send no nacks) plus reaping.
        sim.RunFor(16_000);
        // The other side has been forgotten; only the seed addresses remember it.
        Assert.All(sim.Nodes.Skip(5), n => Assert.Equal(5, n.Node.Members.Count));
        sim.Heal();
        Assert.True(sim.RunUntil(sim.Converged, 15_000), "partition did not heal through the seeds");
    }

    [Fact]
    public void Nodes_survive_random_and_hostile_messages_and_the_cluster_recovers()
    {
        GossipSimulation sim = Converged(5, seed: 18);
        var random = new Random(18);
        // Mostly real members, plus a few made-up ones (which must end up dead: nobody answers for them).
        string RandomId() => random.Next(3) == 0 ? $"{0xfa4e0000 + random.Next(3):x16}" : sim.Nodes[random.Next(5)].NodeId;
        MemberInfo RandomInfo() => new(RandomId(), GossipSimulation.AddressOf(random.Next(8)), "x", random.Next(64), random.Next(), random.Next(2) == 0 ? "idle" : "busy");
        GossipMessage RandomMessage(ulong maxIncarnation)
        {
            ulong inc = (ulong)random.NextInt64(0, (long)Math.Min(maxIncarnation, long.MaxValue));
            return random.Next(9) switch
            {
                0 => new PingMessage((uint)random.Next(), RandomId()),
                1 => new IndirectPingMessage((uint)random.Next(), RandomId(), GossipSimulation.AddressOf(random.Next(8)), random.Next(2) == 0),
                2 => new AckMessage((uint)random.Next(100)),
                3 => new NackMessage((uint)random.Next(100)),
                4 => new AliveMessage(inc, RandomInfo()),
                5 => new SuspectMessage(inc, RandomId(), RandomId()),
                6 => new DeadMessage(inc, RandomId(), RandomId()),
                7 => new LeftMessage(inc, RandomId()),
                _ => new PushPullMessage(random.Next(2) == 0, random.Next(2) == 0,
                    [.. Enumerable.Range(0, random.Next(4)).Select(_ => new PushPullEntry(RandomInfo(), (MemberStatus)random.Next(4), inc))]),
            };
        }
        void Inject(int packets, ulong maxIncarnation)
        {
            for (int i = 0; i < packets; i++)
            {
                SimNode target = sim.Nodes[random.Next(5)];
                byte[] packet = GossipCodec.Encode(new GossipPacket(RandomId(), GossipSimulation.AddressOf(random.Next(8)),
                    [.. Enumerable.Range(0, random.Next(1, 4)).Select(_ => RandomMessage(maxIncarnation))]));
                if (random.Next(4) == 0) packet[random.Next(packet.Length)] ^= 0x5a;
                target.Node.Receive("198.51.100.1:9", packet, sim.NowMs);
                if (i % 3 == 0) sim.Step();
            }
        }
        // Lies about members (made-up ones included) with plausible incarnations: refuted or timed out afterwards.
        Inject(2_000, maxIncarnation: 50);
        bool recovered = sim.RunUntil(sim.Converged, 30_000);
        Assert.True(recovered, "the cluster did not recover from the injected messages");
        Assert.All(sim.Nodes, n => Assert.True(n.Node.LocalIncarnation > 0));
        // Extreme incarnations must not break anything either (incarnations saturate instead of wrapping).
        Inject(1_000, maxIncarnation: ulong.MaxValue);
        sim.RunFor(2_000);
    }

    [Fact]
    public void Metadata_updates_reach_every_member()
    {
        GossipSimulation sim = Converged(10, seed: 8);
        sim.LossRate = 0.1;
        SimNode busy = sim.Nodes[6];
        MemberInfo updated = busy.Node.Local with { State = "busy", Cores = 4 };
        busy.Node.UpdateLocal(updated);
        Assert.True(sim.RunUntil(() => sim.Nodes.All(n => n.Node.Members.Single(m => m.Info.NodeId == busy.NodeId).Info == updated), 1_000));
        Assert.All(LiveOthers(sim, busy), n => Assert.Contains(sim.Events, e => e.Observer == n && e.Event.Kind == GossipEventKind.Updated && e.Event.Member.Info == updated));
    }

    [Fact]
    public void A_graceful_leave_is_seen_as_left_not_dead()
    {
        GossipSimulation sim = Converged(10, seed: 9);
        SimNode leaver = sim.Nodes[2];
        leaver.Node.Leave(sim.NowMs);
        Assert.True(sim.RunUntil(() => !leaver.Node.LeaveBroadcastPending, 2_000));
        leaver.Running = false;
        Assert.True(sim.RunUntil(() => LiveOthers(sim, leaver).All(n => Status(n, leaver) == MemberStatus.Left), 1_000));
        sim.RunFor(3_000);
        Assert.DoesNotContain(sim.Events, e => e.Event.Member.Info.NodeId == leaver.NodeId && e.Event.Kind is GossipEventKind.Dead or GossipEventKind.Suspect);
        Assert.True(sim.Converged());
    }

    [Fact]
    public void Dead_members_are_reaped()
    {
        GossipSimulation sim = Converged(6, seed: 10, new GossipConfig { DeadReapMs = 3_000 });
        SimNode victim = sim.Nodes[5];
        victim.Running = false;
        Assert.True(sim.RunUntil(() => LiveOthers(sim, victim).All(n => Status(n, victim) == MemberStatus.Dead), 3_000));
        Assert.True(sim.RunUntil(() => LiveOthers(sim, victim).All(n => Status(n, victim) is null), 4_000));
        sim.RunFor(3_000);
        Assert.All(LiveOthers(sim, victim), n => Assert.Null(Status(n, victim)));
    }

    [Fact]
    public void A_dead_member_that_comes_back_is_alive_again_with_a_higher_incarnation()
    {
        GossipSimulation sim = Converged(8, seed: 12);
        SimNode victim = sim.Nodes[5];
        victim.Running = false;
        Assert.True(sim.RunUntil(() => LiveOthers(sim, victim).All(n => Status(n, victim) == MemberStatus.Dead), 3_000));
        ulong deadIncarnation = sim.Nodes[0].Node.Members.Single(m => m.Info.NodeId == victim.NodeId).Incarnation;
        // Comes back with its state intact (a long pause), then again after a crash with empty state.
        victim.Running = true;
        long backAt = sim.NowMs;
        Assert.True(sim.RunUntil(sim.Converged, 10_000), "paused node not alive again");
        Assert.True(victim.Node.LocalIncarnation > deadIncarnation);
        Assert.All(LiveOthers(sim, victim), n => Assert.Contains(sim.Events, e => e.Observer == n && e.Event.Kind == GossipEventKind.Joined && e.Event.Member.Info.NodeId == victim.NodeId && e.Event.AtMs >= backAt));

        victim.Running = false;
        Assert.True(sim.RunUntil(() => LiveOthers(sim, victim).All(n => Status(n, victim) == MemberStatus.Dead), 3_000));
        sim.Restart(victim, [sim.Nodes[0].Address]);
        Assert.True(sim.RunUntil(sim.Converged, 10_000), "restarted node not alive again");
        Assert.True(victim.Node.LocalIncarnation > deadIncarnation);
    }

    [Fact]
    public void No_live_member_is_declared_dead_under_ten_percent_loss()
    {
        GossipSimulation sim = Converged(10, seed: 13);
        sim.RecordEvents = false;
        sim.StepMs = 10;
        sim.LossRate = 0.1;
        int suspicions = 0, deaths = 0;
        sim.OnEvent = (_, e) =>
        {
            if (e.Kind == GossipEventKind.Suspect) suspicions++;
            if (e.Kind == GossipEventKind.Dead) deaths++;
        };
        sim.RunFor(10 * 60_000);
        Assert.True(suspicions > 0, "the loss never caused a suspicion: the test exercises nothing");
        Assert.Equal(0, deaths);
        Assert.True(sim.Converged());
    }

    [Fact]
    public void Slow_inter_site_links_with_loss_cause_no_false_deaths_and_failures_are_still_found()
    {
        // Round trips of 80–160 ms exceed the 100 ms probe timeout: timeouts must follow the measured round trips.
        var sim = new GossipSimulation(seed: 16) { MinDelayMs = 40, MaxDelayMs = 80, StepMs = 10 };
        sim.Bootstrap(8);
        Assert.True(sim.RunUntil(sim.Converged, 10_000));
        sim.LossRate = 0.1;
        int deaths = 0;
        sim.OnEvent = (_, e) => deaths += e.Kind == GossipEventKind.Dead ? 1 : 0;
        sim.RunFor(5 * 60_000);
        Assert.Equal(0, deaths);
        // Acks slower than the probe timeout still give round-trip samples (the retry ping has its own sequence).
        Assert.All(sim.Nodes, n => Assert.All(n.Node.Members.Skip(1), m => Assert.InRange(m.RoundTripMs ?? 0, 80, 200)));
        SimNode victim = sim.Nodes[6];
        victim.Running = false;
        Assert.True(sim.RunUntil(() => LiveOthers(sim, victim).All(n => Status(n, victim) == MemberStatus.Dead), 15_000));
    }

    [Fact]
    public void Lifeguard_health_worsens_while_acks_go_missing_and_recovers()
    {
        GossipSimulation sim = Converged(6, seed: 14);
        SimNode cutOff = sim.Nodes[1];
        cutOff.Isolated = true;
        sim.RunFor(1_500);
        Assert.True(cutOff.Node.HealthScore > 0);
        Assert.All(LiveOthers(sim, cutOff), n => Assert.Equal(0, n.Node.HealthScore));
        cutOff.Isolated = false;
        Assert.True(sim.RunUntil(() => cutOff.Node.HealthScore == 0 && sim.Converged(), 20_000));
    }

    [Fact]
    public void Round_trip_times_are_measured()
    {
        GossipSimulation sim = Converged(5, seed: 15);
        sim.RunFor(3_000);
        foreach (SimNode node in sim.Nodes)
        {
            foreach (MemberSnapshot m in node.Node.Members.Skip(1))
            {
                Assert.NotNull(m.RoundTripMs);
                Assert.InRange(m.RoundTripMs.Value, 1, 30);
                Assert.InRange(m.LastHeardMs, sim.NowMs - 3_000, sim.NowMs);
            }
        }
    }
}
