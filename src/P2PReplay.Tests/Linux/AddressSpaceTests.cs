using System.Runtime.InteropServices;
using P2PReplay.Linux.Memory;

namespace P2PReplay.Tests.Linux;

public sealed unsafe class AddressSpaceTests : IDisposable
{
    private const ulong Size = 64UL << 20;
    private readonly byte* _backing = (byte*)NativeMemory.AllocZeroed((nuint)Size);

    public void Dispose() => NativeMemory.Free(_backing);

    private sealed class RecordingMapper(GuestMemory memory) : IPageMapper
    {
        public List<(ulong Start, ulong Length, Protection Protection)> Calls { get; } = [];
        public void SetProtection(ulong start, ulong length, Protection protection) => Calls.Add((start, length, protection));
        public void Discard(ulong start, ulong length) => memory.UncheckedSpan(start, (int)length).Clear();
    }

    private (AddressSpace Space, GuestMemory Memory, RecordingMapper Mapper) Create()
    {
        var memory = new GuestMemory(_backing, Size);
        var mapper = new RecordingMapper(memory);
        var space = new AddressSpace(memory, mapper);
        space.Initialize(0x500000);
        return (space, memory, mapper);
    }

    [Fact]
    public void Anonymous_mappings_are_top_down_deterministic_and_zeroed_after_reuse()
    {
        var (space, memory, _) = Create();
        long a = space.Map(0, 0x3000, Protection.Read | Protection.Write, false, false);
        long b = space.Map(0, 0x1000, Protection.Read, false, false);
        Assert.Equal((long)space.MmapTop - 0x3000, a);
        Assert.Equal(a - 0x1000, b);
        Assert.True(memory.TryWrite((ulong)a, 0xFFUL));
        Assert.Equal(0, space.Unmap((ulong)a, 0x3000));
        Assert.False(memory.IsAccessible((ulong)a, 1, Protection.Read));
        long c = space.Map(0, 0x3000, Protection.Read | Protection.Write, false, false);
        Assert.Equal(a, c);
        Assert.True(memory.TryRead((ulong)c, out ulong value));
        Assert.Equal(0UL, value);
    }

    [Fact]
    public void Brk_grows_and_shrinks_and_refuses_to_overlap()
    {
        var (space, memory, _) = Create();
        Assert.Equal(0x500000UL, space.SetBrk(0));
        Assert.Equal(0x512345UL, space.SetBrk(0x512345));
        Assert.True(memory.IsAccessible(0x500000, 0x13000, Protection.Write));
        Assert.Equal(0x501000UL, space.SetBrk(0x501000));
        Assert.False(memory.IsAccessible(0x501000, 1, Protection.Read));
        space.Map(0x600000, 0x1000, Protection.Read, true, false);
        Assert.Equal(0x501000UL, space.SetBrk(0x700000)); // would run into the fixed mapping
    }

    [Fact]
    public void Partial_unmap_and_protect_split_ranges()
    {
        var (space, memory, _) = Create();
        long a = space.Map(0, 0x4000, Protection.Read | Protection.Write, false, false);
        Assert.Equal(0, space.Unmap((ulong)a + 0x1000, 0x1000));
        Assert.Equal(-12, space.Protect((ulong)a, 0x4000, Protection.Read)); // a hole: ENOMEM like Linux
        Assert.Equal(0, space.Protect((ulong)a + 0x2000, 0x2000, Protection.Read));
        Assert.True(memory.IsAccessible((ulong)a, 0x1000, Protection.Write));
        Assert.False(memory.IsAccessible((ulong)a + 0x2000, 1, Protection.Write));
        Assert.True(memory.IsAccessible((ulong)a + 0x2000, 0x2000, Protection.Read));
    }

    [Fact]
    public void Mremap_grows_in_place_or_moves_keeping_contents()
    {
        var (space, memory, _) = Create();
        long a = space.Map(0, 0x2000, Protection.Read | Protection.Write, false, false);
        memory.TryWrite((ulong)a + 8, 0x1234UL);
        Assert.Equal(a + 0x2000, space.Map((ulong)a + 0x2000, 0x1000, Protection.Read, true, false));
        long moved = space.Remap((ulong)a, 0x2000, 0x10000, 1, 0); // a neighbour sits above: must move
        Assert.True(moved > 0);
        Assert.True(memory.TryRead((ulong)moved + 8, out ulong value));
        Assert.Equal(0x1234UL, value);
        Assert.Equal(moved, space.Remap((ulong)moved, 0x10000, 0x8000, 0, 0)); // shrinking stays in place
        Assert.False(memory.IsAccessible((ulong)moved + 0x8000, 1, Protection.Read));
        Assert.False(memory.IsAccessible((ulong)a, 1, Protection.Read)); // the old range is gone
    }

    [Fact]
    public void Fixed_mappings_outside_the_user_range_are_refused()
    {
        var (space, _, _) = Create();
        Assert.Equal(-12, space.Map(0x1000, 0x1000, Protection.Read, true, false));
        Assert.Equal(-12, space.Map(Size - 0x1000, 0x2000, Protection.Read, true, false));
        Assert.Equal(-22, space.Map(0x600001, 0x1000, Protection.Read, true, false));
        Assert.Equal(-17, space.Map(space.StackBottom, 0x1000, Protection.Read, true, true)); // MAP_FIXED_NOREPLACE
    }
}
