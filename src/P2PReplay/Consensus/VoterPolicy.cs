namespace P2PReplay.Consensus;

/// <summary>
/// Decides the next single membership change for the leader to propose, from the gossip layer's view of the cluster.
/// Order of concern: drop dead voters (while the change can still commit), drop dead learners, admit new live nodes
/// as learners, then shape the voter set: an odd count up to the cap, promoting live learners or demoting voters.
/// One change at a time; call again once the previous one is committed.
/// </summary>
public static class VoterPolicy
{
    public const int DefaultMaxVoters = 5;

    /// <param name="conf">Current membership.</param>
    /// <param name="live">Nodes the gossip layer sees alive (members or not).</param>
    /// <param name="dead">Members the caller declares dead (not merely unknown).</param>
    /// <param name="leaderId">The leader making the change; never demoted or removed by the policy.</param>
    /// <param name="maxVoters">Cap on voters.</param>
    public static ConfChange? Next(ConfState conf, IReadOnlySet<ulong> live, IReadOnlySet<ulong> dead, ulong leaderId = 0, int maxVoters = DefaultMaxVoters)
    {
        ArgumentNullException.ThrowIfNull(conf);
        ArgumentNullException.ThrowIfNull(live);
        ArgumentNullException.ThrowIfNull(dead);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxVoters, 1);
        List<ulong> voters = [.. conf.Voters.Order()];
        List<ulong> learners = [.. conf.Learners.Order()];
        int quorum = voters.Count / 2 + 1;
        int liveVoters = voters.Count(v => !dead.Contains(v));

        // A dead voter goes first: it weighs on every quorum. Only if the removal itself can commit (a quorum of the
        // current voters is alive), and never the last voter.
        ulong? deadVoter = voters.Where(v => dead.Contains(v) && v != leaderId).Select(v => (ulong?)v).FirstOrDefault();
        if (deadVoter is { } gone && voters.Count > 1 && liveVoters >= quorum) return new ConfChange(ConfChangeType.Remove, gone);

        ulong? deadLearner = learners.Where(dead.Contains).Select(v => (ulong?)v).FirstOrDefault();
        if (deadLearner is { } goneLearner) return new ConfChange(ConfChangeType.Remove, goneLearner);

        ulong? newcomer = live.Where(id => id != 0 && !conf.Contains(id) && !dead.Contains(id)).Order().Select(v => (ulong?)v).FirstOrDefault();
        if (newcomer is { } joining) return new ConfChange(ConfChangeType.AddLearner, joining);

        List<ulong> promotable = [.. learners.Where(l => live.Contains(l) && !dead.Contains(l))];
        if (voters.Count > maxVoters || (voters.Count % 2 == 0 && voters.Count + 1 > maxVoters))
        {
            return Demote(voters, dead, leaderId);
        }
        if (voters.Count % 2 == 0)
        {
            // Even: one promotion makes it odd; without a candidate, demoting one keeps the same fault tolerance with a smaller quorum.
            if (promotable.Count > 0) return new ConfChange(ConfChangeType.PromoteLearner, promotable[0]);
            return voters.Count > 1 ? Demote(voters, dead, leaderId) : null;
        }
        // Odd: grow by two (through one even step) only when two learners can be promoted within the cap.
        if (voters.Count + 2 <= maxVoters && promotable.Count >= 2) return new ConfChange(ConfChangeType.PromoteLearner, promotable[0]);
        return null;
    }

    private static ConfChange? Demote(List<ulong> voters, IReadOnlySet<ulong> dead, ulong leaderId)
    {
        // Prefer a voter not known to be healthy, then the highest id; never the leader.
        ulong? victim = voters.Where(v => v != leaderId).OrderByDescending(v => dead.Contains(v)).ThenByDescending(v => v).Select(v => (ulong?)v).FirstOrDefault();
        return victim is { } id ? new ConfChange(ConfChangeType.AddLearner, id) : null;
    }
}
