using P2PReplay.Consensus;

namespace P2PReplay.Tests.Consensus;

public sealed class VoterPolicyTests
{
    private static ConfState Conf(ulong[] voters, ulong[]? learners = null) => new(voters, learners ?? []);

    private static HashSet<ulong> Set(params ulong[] ids) => [.. ids];

    [Fact]
    public void Stable_odd_cluster_needs_nothing() => Assert.Null(VoterPolicy.Next(Conf([1, 2, 3]), Set(1, 2, 3), Set(), leaderId: 1));

    [Fact]
    public void New_live_member_joins_as_learner() => Assert.Equal(new ConfChange(ConfChangeType.AddLearner, 4), VoterPolicy.Next(Conf([1, 2, 3]), Set(1, 2, 3, 4), Set(), 1));

    [Fact]
    public void Single_voter_grows_to_three_through_two_promotions()
    {
        ConfState conf = Conf([1], [2, 3]);
        ConfChange? first = VoterPolicy.Next(conf, Set(1, 2, 3), Set(), 1);
        Assert.Equal(new ConfChange(ConfChangeType.PromoteLearner, 2), first);
        conf = conf.Apply(first!.Value);
        Assert.Equal(new ConfChange(ConfChangeType.PromoteLearner, 3), VoterPolicy.Next(conf, Set(1, 2, 3), Set(), 1));
    }

    [Fact]
    public void Odd_cluster_with_one_learner_stays_odd() => Assert.Null(VoterPolicy.Next(Conf([1, 2, 3], [4]), Set(1, 2, 3, 4), Set(), 1));

    [Fact]
    public void Cap_limits_voters()
    {
        Assert.Null(VoterPolicy.Next(Conf([1, 2, 3, 4, 5], [6, 7]), Set(1, 2, 3, 4, 5, 6, 7), Set(), 1));
        Assert.Equal(new ConfChange(ConfChangeType.AddLearner, 6), VoterPolicy.Next(Conf([1, 2, 3, 4, 5, 6]), Set(1, 2, 3, 4, 5, 6), Set(), 1));
        Assert.Null(VoterPolicy.Next(Conf([1, 2, 3], [4, 5]), Set(1, 2, 3, 4, 5), Set(), 1, maxVoters: 3));
    }

    [Fact]
    public void Dead_voter_is_removed_then_replaced_by_a_learner()
    {
        ConfState conf = Conf([1, 2, 3], [4]);
        ConfChange? first = VoterPolicy.Next(conf, Set(1, 2, 4), Set(3), 1);
        Assert.Equal(new ConfChange(ConfChangeType.Remove, 3), first);
        conf = conf.Apply(first!.Value);
        Assert.Equal(new ConfChange(ConfChangeType.PromoteLearner, 4), VoterPolicy.Next(conf, Set(1, 2, 4), Set(3), 1));
    }

    [Fact]
    public void Removal_that_cannot_commit_is_not_proposed() => Assert.Null(VoterPolicy.Next(Conf([1, 2, 3]), Set(1), Set(2, 3), 1));

    [Fact]
    public void Leader_and_last_voter_are_never_removed()
    {
        Assert.Null(VoterPolicy.Next(Conf([1]), Set(), Set(1), 1));
        Assert.NotEqual(ConfChangeType.Remove, VoterPolicy.Next(Conf([1, 2, 3, 4, 5]), Set(2, 3, 4, 5), Set(1), 1)?.Type);
    }

    [Fact]
    public void Dead_learner_is_removed() => Assert.Equal(new ConfChange(ConfChangeType.Remove, 5), VoterPolicy.Next(Conf([1, 2, 3], [5]), Set(1, 2, 3), Set(5), 1));

    [Fact]
    public void Even_cluster_without_candidates_demotes_one_but_not_the_leader() => Assert.Equal(new ConfChange(ConfChangeType.AddLearner, 3), VoterPolicy.Next(Conf([1, 2, 3, 4]), Set(1, 2, 3, 4), Set(), leaderId: 4));

    /// <summary>Driving the policy to a fixed point from any membership keeps at least one voter and ends odd and within the cap.</summary>
    [Fact]
    public void Fixed_point_is_reached_and_sane()
    {
        var random = new Random(5);
        for (int trial = 0; trial < 500; trial++)
        {
            ulong[] universe = [.. Enumerable.Range(1, 9).Select(i => (ulong)i)];
            ulong[] voters = [.. universe.Where(_ => random.Next(3) == 0)];
            if (voters.Length == 0) voters = [1];
            ulong[] learners = [.. universe.Where(u => !voters.Contains(u) && random.Next(3) == 0)];
            HashSet<ulong> live = [.. universe.Where(_ => random.Next(4) != 0)];
            live.Add(voters[0]);
            ConfState conf = Conf(voters, learners);
            int steps = 0;
            while (VoterPolicy.Next(conf, live, Set(), voters[0]) is { } change)
            {
                conf = conf.Apply(change);
                Assert.True(++steps < 50, $"no fixed point from {Conf(voters, learners)}");
                Assert.NotEmpty(conf.Voters);
            }
            Assert.True(conf.Voters.Count <= VoterPolicy.DefaultMaxVoters);
            Assert.True(conf.Voters.Count % 2 == 1, $"even voters {conf}");
        }
    }
}
