namespace P2PReplay.Guest;

/// <summary>What a leaf page-table entry grants (SDM 3A §4.5, Table 4-19).</summary>
[Flags]
internal enum PageAccess
{
    None = 0,
    Read = 1,
    Write = 2,
    Execute = 4,
    /// <summary>U/S=1: CPL3 may access the page.</summary>
    User = 8,
}

/// <summary>
/// 4-level x86-64 page tables (SDM 3A §4.5) identity-mapping guest-virtual onto guest-physical addresses with
/// 4 KiB pages. Table pages come from a pool in guest-physical memory that no virtual address maps.
/// </summary>
internal sealed unsafe class PageTables
{
    // Entry bits (SDM 3A Table 4-15..4-20): P bit 0, R/W bit 1, U/S bit 2, XD bit 63; address bits 51:12.
    public const ulong Present = 1UL << 0, Writable = 1UL << 1, UserAccessible = 1UL << 2, NoExecute = 1UL << 63;
    public const ulong LargePage = 1UL << 7; // PS in a PDE: a 2 MiB page (SDM 3A Table 4-17)
    public const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;
    private const ulong PageSize = GuestLayout.PageSize;
    private const ulong LargePageSize = 2UL << 20;
    private const ulong FlagsMask = ~AddressMask & ~LargePage;

    private readonly byte* _memory;
    private readonly ulong _poolEnd;
    private ulong _nextTable;
    private readonly Stack<ulong> _freeTables = new();

    /// <param name="memory">host pointer to guest-physical 0</param>
    /// <param name="poolStart">first guest-physical byte of the table pool (page-aligned)</param>
    /// <param name="poolEnd">end of the pool</param>
    public PageTables(byte* memory, ulong poolStart, ulong poolEnd)
    {
        if (poolStart % PageSize != 0 || poolEnd <= poolStart) throw new ArgumentException("bad page-table pool");
        _memory = memory;
        _nextTable = poolStart;
        _poolEnd = poolEnd;
        Root = AllocateTable();
    }

    /// <summary>
    /// Snapshots: the allocator's state. The tables themselves are guest-physical memory and travel with it; the root
    /// is always the pool's first page.
    /// </summary>
    public (ulong NextTable, ulong[] FreeTables) AllocatorState => (_nextTable, _freeTables.Reverse().ToArray());

    public void RestoreAllocator(ulong nextTable, IEnumerable<ulong> freeTables)
    {
        if (nextTable % PageSize != 0 || nextTable < Root + PageSize || nextTable > _poolEnd) throw new ArgumentException($"page-table pool position 0x{nextTable:x} is outside the pool");
        _nextTable = nextTable;
        _freeTables.Clear();
        foreach (ulong table in freeTables)
        {
            if (table % PageSize != 0 || table < Root || table >= nextTable) throw new ArgumentException($"free page table 0x{table:x} is outside the pool");
            _freeTables.Push(table);
        }
    }

    /// <summary>Guest-physical address of the PML4 (CR3).</summary>
    public ulong Root { get; }

    public static ulong LeafEntry(ulong physical, PageAccess access)
    {
        if ((access & (PageAccess.Read | PageAccess.Write | PageAccess.Execute)) == 0) return 0;
        ulong entry = (physical & AddressMask) | Present;
        if ((access & PageAccess.Write) != 0) entry |= Writable;
        if ((access & PageAccess.User) != 0) entry |= UserAccessible;
        if ((access & PageAccess.Execute) == 0) entry |= NoExecute;
        return entry;
    }

    /// <summary>
    /// Maps [virtualAddress, +length) onto the same physical addresses with the given access. Whole aligned 2 MiB
    /// chunks get one large-page PDE: under shadow paging each first touch of a 4 KiB page is an exit, so large
    /// pages make first touches of big allocations far cheaper. Partial changes split a large page first.
    /// </summary>
    public void Map(ulong virtualAddress, ulong length, PageAccess access)
    {
        if (virtualAddress % PageSize != 0 || length % PageSize != 0) throw new ArgumentException("page-table ranges must be page-aligned");
        ulong end = virtualAddress + length;
        for (ulong va = virtualAddress; va < end;)
        {
            if (va % LargePageSize == 0 && end - va >= LargePageSize)
            {
                ulong entry = LeafEntry(va, access);
                ulong* pde = WalkToDirectory(va, create: entry != 0);
                if (pde != null)
                {
                    if ((*pde & Present) != 0 && (*pde & LargePage) == 0) _freeTables.Push(*pde & AddressMask);
                    *pde = entry == 0 ? 0 : entry | LargePage;
                }
                va += LargePageSize;
            }
            else
            {
                ulong entry = LeafEntry(va, access);
                ulong* leaf = WalkToLeaf(va, create: entry != 0);
                if (leaf != null) *leaf = entry;
                va += PageSize;
            }
        }
    }

    /// <summary>Translates like the MMU would; false when some level is not present.</summary>
    public bool TryTranslate(ulong virtualAddress, out ulong physical, out ulong entry)
    {
        ulong* pde = WalkToDirectory(virtualAddress, create: false);
        if (pde != null && (*pde & (Present | LargePage)) == (Present | LargePage))
        {
            entry = *pde & ~LargePage;
            physical = (*pde & AddressMask & ~(LargePageSize - 1)) | (virtualAddress & (LargePageSize - 1));
            return true;
        }
        ulong* leaf = WalkToLeaf(virtualAddress, create: false);
        entry = leaf == null ? 0 : *leaf;
        physical = (entry & AddressMask) | (virtualAddress & (PageSize - 1));
        return (entry & Present) != 0;
    }

    /// <summary>The PDE covering the address (creating the PML4E/PDPTE on the way when asked).</summary>
    private ulong* WalkToDirectory(ulong virtualAddress, bool create)
    {
        ulong table = Root;
        for (int shift = 39; shift > 21; shift -= 9)
        {
            // SAFETY: table is a page inside the pool (allocated by AllocateTable or read from an entry we wrote).
            ulong* entry = (ulong*)(_memory + table) + ((virtualAddress >> shift) & 511);
            if ((*entry & Present) == 0)
            {
                if (!create) return null;
                // Upper levels grant everything; the leaf decides.
                *entry = AllocateTable() | Present | Writable | UserAccessible;
            }
            table = *entry & AddressMask;
        }
        // SAFETY: as above, table is a pool page; the index is below 512.
        return (ulong*)(_memory + table) + ((virtualAddress >> 21) & 511);
    }

    /// <summary>The 4 KiB PTE for the address; a large page in the way is split into 512 equal PTEs first.</summary>
    private ulong* WalkToLeaf(ulong virtualAddress, bool create)
    {
        ulong* pde = WalkToDirectory(virtualAddress, create);
        if (pde == null) return null;
        if ((*pde & Present) == 0)
        {
            if (!create) return null;
            *pde = AllocateTable() | Present | Writable | UserAccessible;
        }
        else if ((*pde & LargePage) != 0)
        {
            ulong large = *pde;
            ulong table = AllocateTable();
            // SAFETY: table is a fresh pool page of 512 entries.
            ulong* entries = (ulong*)(_memory + table);
            ulong baseAddress = large & AddressMask & ~(LargePageSize - 1);
            for (int i = 0; i < 512; i++) entries[i] = (baseAddress + (ulong)i * PageSize) | (large & FlagsMask);
            *pde = table | Present | Writable | UserAccessible;
        }
        // SAFETY: the PDE now points at a pool page of 512 PTEs.
        return (ulong*)(_memory + (*pde & AddressMask)) + ((virtualAddress >> 12) & 511);
    }

    private ulong AllocateTable()
    {
        if (_freeTables.TryPop(out ulong reused))
        {
            // SAFETY: reused is a pool page that was released by a large mapping.
            new Span<byte>(_memory + reused, (int)PageSize).Clear();
            return reused;
        }
        if (_nextTable + PageSize > _poolEnd) throw new InvalidOperationException("page-table pool exhausted");
        ulong table = _nextTable;
        _nextTable += PageSize;
        // SAFETY: [table, table+4096) lies inside the pool, which the caller sized within guest memory.
        new Span<byte>(_memory + table, (int)PageSize).Clear();
        return table;
    }
}
