using System.Runtime.InteropServices;
using P2PReplay.Guest;

namespace P2PReplay.Tests.Guest;

public sealed unsafe class PageTableTests : IDisposable
{
    private const ulong UserEnd = 64UL << 20;
    private readonly ulong _poolSize = GuestLayout.PageTablePoolSize(UserEnd);
    private readonly byte* _memory;

    public PageTableTests() => _memory = (byte*)NativeMemory.AllocZeroed((nuint)(UserEnd + _poolSize));

    public void Dispose() => NativeMemory.Free(_memory);

    [Fact]
    public void Mapped_pages_translate_identically_with_the_requested_rights()
    {
        var tables = new PageTables(_memory, UserEnd, UserEnd + _poolSize);
        tables.Map(0x400000, 0x3000, PageAccess.User | PageAccess.Read | PageAccess.Execute);
        tables.Map(0x600000, 0x1000, PageAccess.User | PageAccess.Read | PageAccess.Write);

        Assert.True(tables.TryTranslate(0x401234, out ulong physical, out ulong entry));
        Assert.Equal(0x401234UL, physical);
        Assert.Equal(0UL, entry & PageTables.Writable);
        Assert.Equal(PageTables.UserAccessible, entry & PageTables.UserAccessible);
        Assert.Equal(0UL, entry & PageTables.NoExecute);

        Assert.True(tables.TryTranslate(0x600008, out _, out entry));
        Assert.Equal(PageTables.Writable, entry & PageTables.Writable);
        Assert.Equal(PageTables.NoExecute, entry & PageTables.NoExecute);

        Assert.False(tables.TryTranslate(0x403000, out _, out _));
        Assert.False(tables.TryTranslate(0, out _, out _));
    }

    [Fact]
    public void Unmapping_clears_the_leaf_and_tables_stay_inside_the_pool()
    {
        var tables = new PageTables(_memory, UserEnd, UserEnd + _poolSize);
        Assert.InRange(tables.Root, UserEnd, UserEnd + _poolSize - 4096);
        tables.Map(0, UserEnd, PageAccess.User | PageAccess.Read | PageAccess.Write); // the pool suffices for everything
        tables.Map(0x10000, 0x1000, PageAccess.None);
        Assert.False(tables.TryTranslate(0x10000, out _, out _));
        Assert.True(tables.TryTranslate(0x11000, out _, out _));
        // Nothing below the pool was written by the table builder.
        Assert.True(new ReadOnlySpan<byte>(_memory, (int)UserEnd).IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void Aligned_2MiB_chunks_use_large_pages_that_split_on_partial_changes()
    {
        var tables = new PageTables(_memory, UserEnd, UserEnd + _poolSize);
        tables.Map(0x200000, 0x400000, PageAccess.User | PageAccess.Read | PageAccess.Write);
        Assert.True(tables.TryTranslate(0x3FF123, out ulong physical, out _));
        Assert.Equal(0x3FF123UL, physical);

        // Making one 4 KiB page read-only splits its large page; the neighbours keep their rights.
        tables.Map(0x201000, 0x1000, PageAccess.User | PageAccess.Read);
        Assert.True(tables.TryTranslate(0x201000, out _, out ulong entry));
        Assert.Equal(0UL, entry & PageTables.Writable);
        Assert.True(tables.TryTranslate(0x200000, out _, out entry));
        Assert.Equal(PageTables.Writable, entry & PageTables.Writable);
        Assert.True(tables.TryTranslate(0x3FF000, out _, out entry));
        Assert.Equal(PageTables.Writable, entry & PageTables.Writable);

        // Unmapping whole chunks clears them, whether split or not; remapping reuses freed tables.
        tables.Map(0x200000, 0x400000, PageAccess.None);
        Assert.False(tables.TryTranslate(0x201000, out _, out _));
        Assert.False(tables.TryTranslate(0x500000, out _, out _));
        for (int round = 0; round < 1000; round++)
        {
            tables.Map(0x200000, 0x200000, PageAccess.User | PageAccess.Read | PageAccess.Write);
            tables.Map(0x200000, 0x1000, PageAccess.None);
        }
        Assert.False(tables.TryTranslate(0x200000, out _, out _));
        Assert.True(tables.TryTranslate(0x201000, out _, out _));
    }

    [Fact]
    public void Pool_size_covers_a_full_mapping_of_any_supported_size()
    {
        foreach (ulong size in new[] { 16UL << 20, 512UL << 20, 3UL << 30 })
        {
            ulong pages = GuestLayout.PageTablePoolSize(size) / 4096;
            ulong needed = 2 + ((size + (1UL << 30) - 1) >> 30) + (size >> 21);
            Assert.True(pages >= needed, $"{size}: {pages} < {needed}");
        }
    }
}
