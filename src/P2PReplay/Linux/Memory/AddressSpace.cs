using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.Memory;

/// <summary>
/// The guest's memory map: mapped ranges, the program break and a deterministic top-down mmap allocator.
/// Protections live in <see cref="GuestMemory"/> (for pointer checks) and in the page tables (through the mapper).
/// Unmapped memory is always zero, so a fresh mapping reads as zeros without clearing it.
/// </summary>
public sealed class AddressSpace
{
    /// <summary>Like Linux's vm.mmap_min_addr: the lowest 64 KiB are never mapped (NULL stays a fault; the VMM keeps its tables there).</summary>
    public const ulong MinAddress = 0x10000;
    public const ulong DefaultStackSize = 8 << 20;
    private const ulong StackGap = 2 << 20; // keeps the mmap area 2 MiB-aligned, so large pages fit

    private readonly GuestMemory _memory;
    private readonly IPageMapper _mapper;
    // Sorted, non-overlapping, non-adjacent [Start, End) ranges that are mapped (any protection, PROT_NONE included).
    private readonly List<(ulong Start, ulong End)> _mapped = [];

    public AddressSpace(GuestMemory memory, IPageMapper mapper)
    {
        _memory = memory;
        _mapper = mapper;
        StackTop = memory.UserEnd;
        StackBottom = StackTop - DefaultStackSize;
        MmapTop = StackBottom - StackGap;
    }

    public ulong StackTop { get; }

    public ulong StackBottom { get; }

    /// <summary>mmap without a usable hint allocates top-down below this address.</summary>
    public ulong MmapTop { get; }

    public ulong BrkStart { get; private set; }

    public ulong Brk { get; private set; }

    public IReadOnlyList<(ulong Start, ulong End)> MappedRanges => _mapped;

    /// <summary>Maps the stack and sets the break just past the loaded image.</summary>
    public void Initialize(ulong imageEnd)
    {
        if (imageEnd > MmapTop) throw new ArgumentOutOfRangeException(nameof(imageEnd), "the program does not fit in guest memory");
        MapRange(StackBottom, StackTop - StackBottom, Protection.Read | Protection.Write);
        BrkStart = Brk = GuestMemory.PageAlignUp(imageEnd);
    }

    /// <summary>Maps a range exactly where asked (the loader, MAP_FIXED); any previous mapping there is dropped first.</summary>
    public void MapFixed(ulong start, ulong length, Protection protection)
    {
        Unmap(start, length);
        MapRange(start, length, protection);
    }

    public bool IsFree(ulong start, ulong length)
    {
        ulong end = start + length;
        if (start < MinAddress || end > _memory.UserEnd || end <= start) return false;
        foreach (var (s, e) in _mapped)
        {
            if (s < end && start < e) return false;
        }
        return true;
    }

    public bool IsMapped(ulong start, ulong length)
    {
        ulong cursor = start, end = start + length;
        foreach (var (s, e) in _mapped)
        {
            if (e <= cursor) continue;
            if (s > cursor) return false;
            cursor = e;
            if (cursor >= end) return true;
        }
        return cursor >= end;
    }

    /// <summary>mmap: returns the address or -errno. Contents are zero; file mappings are filled by the caller.</summary>
    public long Map(ulong hint, ulong length, Protection protection, bool fixedAddress, bool noReplace)
    {
        if (length == 0) return -Errno.EINVAL;
        length = GuestMemory.PageAlignUp(length);
        if (length == 0) return -Errno.ENOMEM;
        if (fixedAddress)
        {
            if (hint % GuestMemory.PageSize != 0) return -Errno.EINVAL;
            if (hint < MinAddress || hint + length > _memory.UserEnd || hint + length < hint) return -Errno.ENOMEM;
            if (noReplace && !IsFree(hint, length)) return -Errno.EEXIST;
            MapFixed(hint, length, protection);
            return (long)hint;
        }
        ulong aligned = GuestMemory.PageAlignDown(hint);
        ulong start = aligned != 0 && IsFree(aligned, length) ? aligned : FindFreeTopDown(length);
        if (start == 0) return -Errno.ENOMEM;
        MapRange(start, length, protection);
        return (long)start;
    }

    /// <summary>munmap: unmapping something that is not mapped is not an error.</summary>
    public int Unmap(ulong start, ulong length)
    {
        if (start % GuestMemory.PageSize != 0 || length == 0) return -Errno.EINVAL;
        length = GuestMemory.PageAlignUp(length);
        ulong end = start + length;
        if (end < start || end > _memory.UserEnd) return -Errno.EINVAL;
        var kept = new List<(ulong Start, ulong End)>(_mapped.Count + 1);
        foreach (var (s, e) in _mapped)
        {
            if (e <= start || s >= end)
            {
                kept.Add((s, e));
                continue;
            }
            ulong cutStart = Math.Max(s, start), cutEnd = Math.Min(e, end);
            _memory.SetProtection(cutStart, cutEnd - cutStart, Protection.None);
            _mapper.SetProtection(cutStart, cutEnd - cutStart, Protection.None);
            _mapper.Discard(cutStart, cutEnd - cutStart);
            _memory.MarkWritten(cutStart, cutEnd - cutStart);
            if (s < cutStart) kept.Add((s, cutStart));
            if (e > cutEnd) kept.Add((cutEnd, e));
        }
        _mapped.Clear();
        _mapped.AddRange(kept);
        return 0;
    }

    /// <summary>mprotect: the whole range must be mapped (ENOMEM otherwise, as Linux).</summary>
    public int Protect(ulong start, ulong length, Protection protection)
    {
        if (start % GuestMemory.PageSize != 0) return -Errno.EINVAL;
        if (length == 0) return 0;
        length = GuestMemory.PageAlignUp(length);
        if (start + length < start || !IsMapped(start, length)) return -Errno.ENOMEM;
        _memory.SetProtection(start, length, protection);
        _mapper.SetProtection(start, length, protection);
        return 0;
    }

    /// <summary>brk: moves the break when it can and always returns the (new or old) break.</summary>
    public ulong SetBrk(ulong requested)
    {
        if (requested < BrkStart) return Brk;
        ulong newTop = GuestMemory.PageAlignUp(requested), oldTop = GuestMemory.PageAlignUp(Brk);
        if (newTop > oldTop)
        {
            if (newTop > MmapTop || !IsFree(oldTop, newTop - oldTop)) return Brk;
            MapRange(oldTop, newTop - oldTop, Protection.Read | Protection.Write);
        }
        else if (newTop < oldTop)
        {
            Unmap(newTop, oldTop - newTop);
        }
        Brk = requested;
        return Brk;
    }

    /// <summary>mremap with MREMAP_MAYMOVE (1) and MREMAP_FIXED (2). Returns the new address or -errno.</summary>
    public long Remap(ulong oldStart, ulong oldLength, ulong newLength, int flags, ulong newAddress)
    {
        const int MayMove = 1, Fixed = 2;
        if (oldStart % GuestMemory.PageSize != 0 || (flags & ~(MayMove | Fixed)) != 0) return -Errno.EINVAL;
        if ((flags & Fixed) != 0 && (flags & MayMove) == 0) return -Errno.EINVAL;
        oldLength = GuestMemory.PageAlignUp(oldLength);
        newLength = GuestMemory.PageAlignUp(newLength);
        if (newLength == 0 || oldLength == 0) return -Errno.EINVAL;
        if (!IsMapped(oldStart, oldLength)) return -Errno.EFAULT;
        var protection = _memory.GetProtection(oldStart);
        if ((flags & Fixed) == 0)
        {
            if (newLength <= oldLength)
            {
                if (newLength < oldLength) Unmap(oldStart + newLength, oldLength - newLength);
                return (long)oldStart;
            }
            if (IsFree(oldStart + oldLength, newLength - oldLength))
            {
                MapRange(oldStart + oldLength, newLength - oldLength, protection);
                return (long)oldStart;
            }
            if ((flags & MayMove) == 0) return -Errno.ENOMEM;
            newAddress = FindFreeTopDown(newLength);
            if (newAddress == 0) return -Errno.ENOMEM;
        }
        else
        {
            if (newAddress % GuestMemory.PageSize != 0) return -Errno.EINVAL;
            if (newAddress < MinAddress || newAddress + newLength > _memory.UserEnd) return -Errno.ENOMEM;
            if (newAddress < oldStart + oldLength && oldStart < newAddress + newLength) return -Errno.EINVAL;
            Unmap(newAddress, newLength);
        }
        MapRange(newAddress, newLength, protection);
        ulong copy = Math.Min(oldLength, newLength);
        // Moves in chunks because a span is limited to 2 GiB.
        for (ulong done = 0; done < copy;)
        {
            int chunk = (int)Math.Min(copy - done, 1UL << 30);
            _memory.UncheckedReadOnlySpan(oldStart + done, chunk).CopyTo(_memory.UncheckedSpan(newAddress + done, chunk));
            done += (ulong)chunk;
        }
        Unmap(oldStart, oldLength);
        return (long)newAddress;
    }

    /// <summary>madvise(MADV_DONTNEED): private anonymous pages read back as zeros.</summary>
    public int DiscardPages(ulong start, ulong length)
    {
        if (start % GuestMemory.PageSize != 0) return -Errno.EINVAL;
        length = GuestMemory.PageAlignUp(length);
        if (length == 0) return 0;
        if (!IsMapped(start, length)) return -Errno.ENOMEM;
        for (ulong done = 0; done < length;)
        {
            int chunk = (int)Math.Min(length - done, 1UL << 30);
            _memory.UncheckedSpan(start + done, chunk).Clear();
            done += (ulong)chunk;
        }
        return 0;
    }

    private void MapRange(ulong start, ulong length, Protection protection)
    {
        _memory.SetProtection(start, length, protection);
        _mapper.SetProtection(start, length, protection);
        ulong end = start + length;
        int i = 0;
        while (i < _mapped.Count && _mapped[i].End < start) i++;
        // Merge with every range that overlaps or touches [start, end).
        while (i < _mapped.Count && _mapped[i].Start <= end)
        {
            start = Math.Min(start, _mapped[i].Start);
            end = Math.Max(end, _mapped[i].End);
            _mapped.RemoveAt(i);
        }
        _mapped.Insert(i, (start, end));
    }

    /// <summary>Snapshots: puts back the memory map and break (protections and page tables are restored with guest memory).</summary>
    internal void Restore(IEnumerable<(ulong Start, ulong End)> mapped, ulong brkStart, ulong brk)
    {
        _mapped.Clear();
        _mapped.AddRange(mapped);
        BrkStart = brkStart;
        Brk = brk;
    }

    private ulong FindFreeTopDown(ulong length)
    {
        ulong floor = Math.Max(GuestMemory.PageAlignUp(Brk), MinAddress);
        ulong ceiling = MmapTop;
        for (int i = _mapped.Count - 1; i >= -1; i--)
        {
            if (i >= 0 && _mapped[i].Start >= ceiling) continue;
            ulong gapStart = Math.Max(i >= 0 ? _mapped[i].End : MinAddress, floor);
            if (ceiling > gapStart && ceiling - gapStart >= length) return ceiling - length;
            if (i >= 0) ceiling = _mapped[i].Start;
            if (ceiling <= floor) break;
        }
        return 0;
    }
}
