using P2PReplay.Cluster;

namespace P2PReplay.Tests.ClusterTests;

public sealed class ClusterStateTests
{
    private static byte[] Put(string vm, ulong epoch, string primary) =>
        ClusterState.Encode(new PutPlacement(new Placement(vm, epoch, primary, ["b", "c"], "sha256:00")));

    [Fact]
    public void Applies_placements_in_order_and_fences_stale_epochs()
    {
        var state = new ClusterState();
        Assert.True(state.Apply(1, Put("web", 1, "a")).Applied);
        Assert.True(state.Apply(2, Put("web", 2, "b")).Applied);
        var stale = state.Apply(3, Put("web", 2, "c"));
        Assert.False(stale.Applied);
        Assert.Contains("stale epoch", stale.Message, StringComparison.Ordinal);
        Assert.Equal("b", state.Find("web")!.Primary);
        Assert.True(state.Apply(4, ClusterState.Encode(new RemovePlacement("web"))).Applied);
        Assert.Null(state.Find("web"));
        Assert.Equal(4UL, state.AppliedIndex);
    }

    [Fact]
    public void Garbage_and_empty_entries_are_skipped_the_same_way_everywhere()
    {
        var state = new ClusterState();
        Assert.False(state.Apply(1, "not json"u8).Applied);
        Assert.False(state.Apply(2, []).Applied);
        Assert.False(state.Apply(3, """{"op":"explode"}"""u8).Applied);
        Assert.Empty(state.Placements);
        Assert.Throws<InvalidOperationException>(() => state.Apply(3, []));
    }

    [Fact]
    public void Snapshot_round_trips()
    {
        var state = new ClusterState();
        state.Apply(1, Put("web", 3, "a"));
        state.Apply(2, Put("db", 1, "c"));
        var copy = new ClusterState();
        copy.Restore(state.Snapshot());
        Assert.Equal(2UL, copy.AppliedIndex);
        Assert.Equal(state.Placements, copy.Placements, (x, y) => x!.Vm == y!.Vm && x.Epoch == y.Epoch && x.Primary == y.Primary && x.Replicas.SequenceEqual(y.Replicas));
    }
}
