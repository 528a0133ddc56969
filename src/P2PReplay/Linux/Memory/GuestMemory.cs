using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace P2PReplay.Linux.Memory;

/// <summary>
/// The guest's user address space as the personality sees it. Guest virtual addresses are identity-mapped
/// onto guest-physical memory, which is one host mapping; every access is checked against the guest's page
/// protections so that a hostile pointer yields EFAULT, never a host fault.
/// </summary>
public sealed unsafe class GuestMemory
{
    public const int PageShift = 12;
    public const ulong PageSize = 1UL << PageShift;

    private readonly byte* _base;
    private readonly Protection[] _pages;
    // Pages the VMM wrote (syscall results, loader, mremap copies, discards) since the last TakeWrittenPages.
    private readonly ulong[] _written;

    /// <param name="basePointer">host address of guest-physical 0</param>
    /// <param name="userEnd">first address past the user-visible range (the guest's address space limit)</param>
    public GuestMemory(byte* basePointer, ulong userEnd)
    {
        if (userEnd % PageSize != 0) throw new ArgumentException("userEnd must be page-aligned", nameof(userEnd));
        _base = basePointer;
        UserEnd = userEnd;
        _pages = new Protection[userEnd >> PageShift];
        _written = new ulong[((userEnd >> PageShift) + 63) / 64];
    }

    /// <summary>
    /// ORs into the bitmap (one bit per page below <see cref="UserEnd"/>) the pages the guest CPU wrote since the
    /// previous call, and re-arms that tracking; the VMM sets it when the VM logs dirty pages (KVM_GET_DIRTY_LOG).
    /// </summary>
    public Action<ulong[]>? CollectGuestWrites { get; set; }

    /// <summary>Marks pages as written by the VMM itself (KVM's dirty log does not see writes through the host mapping).</summary>
    public void MarkWritten(ulong address, ulong length)
    {
        if (length == 0 || address >= UserEnd) return;
        ulong last = Math.Min(address + length - 1, UserEnd - 1) >> PageShift;
        for (ulong page = address >> PageShift; page <= last; page++) _written[page >> 6] |= 1UL << (int)(page & 63);
    }

    /// <summary>Pages written by the guest or the VMM since the previous call (one bit per page), and starts a new interval.</summary>
    public ulong[] TakeWrittenPages()
    {
        var taken = (ulong[])_written.Clone();
        Array.Clear(_written);
        CollectGuestWrites?.Invoke(taken);
        return taken;
    }

    public ulong UserEnd { get; }

    /// <summary>Snapshots: every page's protection (read-only view; restore with <see cref="RestoreProtections"/>).</summary>
    internal ReadOnlySpan<Protection> Protections => _pages;

    internal void RestoreProtections(ReadOnlySpan<Protection> pages)
    {
        if (pages.Length != _pages.Length) throw new ArgumentException("protection table size differs", nameof(pages));
        pages.CopyTo(_pages);
    }

    /// <summary>Snapshots: the pages written since the last digest (guest and VMM), without ending the interval.</summary>
    internal ulong[] PeekWrittenPages()
    {
        var taken = TakeWrittenPages();
        for (int i = 0; i < taken.Length && i < _written.Length; i++) _written[i] |= taken[i];
        return taken;
    }

    internal void RestoreWrittenPages(ReadOnlySpan<ulong> bitmap)
    {
        if (bitmap.Length != _written.Length) throw new ArgumentException("written-page bitmap size differs", nameof(bitmap));
        bitmap.CopyTo(_written);
    }

    public static ulong PageAlignDown(ulong value) => value & ~(PageSize - 1);

    public static ulong PageAlignUp(ulong value) => (value + PageSize - 1) & ~(PageSize - 1);

    public Protection GetProtection(ulong address) => address < UserEnd ? _pages[address >> PageShift] : Protection.None;

    /// <summary>The protections of the pages of a page-aligned range, one byte each (for state digests).</summary>
    public ReadOnlySpan<byte> ProtectionBytes(ulong start, ulong length) =>
        MemoryMarshal.AsBytes(_pages.AsSpan((int)(start >> PageShift), (int)(length >> PageShift)));

    /// <summary>Records the guest-visible protection of a page range (the page tables are changed by the caller's mapper).</summary>
    public void SetProtection(ulong start, ulong length, Protection protection)
    {
        if (start % PageSize != 0 || length % PageSize != 0 || start + length > UserEnd || start + length < start)
            throw new ArgumentOutOfRangeException(nameof(start), $"bad page range 0x{start:x}+0x{length:x}");
        _pages.AsSpan((int)(start >> PageShift), (int)(length >> PageShift)).Fill(protection);
    }

    /// <summary>True when every byte of [address, address+length) is mapped with at least the given rights.</summary>
    public bool IsAccessible(ulong address, ulong length, Protection needed)
    {
        if (length == 0) return true;
        ulong end = address + length;
        if (end < address || end > UserEnd) return false;
        for (ulong page = address >> PageShift, last = (end - 1) >> PageShift; page <= last; page++)
        {
            if ((_pages[page] & needed) != needed) return false;
        }
        return true;
    }

    /// <summary>A view of guest bytes for reading; false (EFAULT) when any byte is not readable.</summary>
    public bool TryGetReadable(ulong address, int length, out ReadOnlySpan<byte> span)
    {
        if (length < 0 || !IsAccessible(address, (ulong)length, Protection.Read))
        {
            span = default;
            return false;
        }
        // SAFETY: [address, address+length) lies inside UserEnd, which the host mapping covers.
        span = new ReadOnlySpan<byte>(_base + address, length);
        return true;
    }

    /// <summary>A view of guest bytes for writing; false (EFAULT) when any byte is not writable.</summary>
    public bool TryGetWritable(ulong address, int length, out Span<byte> span)
    {
        if (length < 0 || !IsAccessible(address, (ulong)length, Protection.Write))
        {
            span = default;
            return false;
        }
        // SAFETY: [address, address+length) lies inside UserEnd, which the host mapping covers.
        span = new Span<byte>(_base + address, length);
        MarkWritten(address, (ulong)length);
        return true;
    }

    public bool TryRead(ulong address, Span<byte> destination)
    {
        if (!TryGetReadable(address, destination.Length, out var source)) return false;
        source.CopyTo(destination);
        return true;
    }

    public bool TryWrite(ulong address, ReadOnlySpan<byte> source)
    {
        if (!TryGetWritable(address, source.Length, out var destination)) return false;
        source.CopyTo(destination);
        return true;
    }

    public bool TryRead<T>(ulong address, out T value) where T : unmanaged
    {
        if (!TryGetReadable(address, sizeof(T), out var span))
        {
            value = default;
            return false;
        }
        value = MemoryMarshal.Read<T>(span);
        return true;
    }

    public bool TryWrite<T>(ulong address, in T value) where T : unmanaged
    {
        if (!TryGetWritable(address, sizeof(T), out var span)) return false;
        MemoryMarshal.Write(span, in Unsafe.AsRef(in value));
        return true;
    }

    /// <summary>
    /// Reads a NUL-terminated string of at most maxLength bytes (excluding the NUL).
    /// Returns 0 on success, -EFAULT for an unreadable byte, -ENAMETOOLONG when no NUL is found in time.
    /// </summary>
    public int TryReadCString(ulong address, int maxLength, out byte[] bytes)
    {
        bytes = [];
        for (int i = 0; i <= maxLength; i++)
        {
            ulong a = address + (ulong)i;
            if (a < address || GetProtection(a).HasFlag(Protection.Read) == false) return -Abi.Errno.EFAULT;
            // SAFETY: a is below UserEnd and readable (checked just above).
            if (_base[a] == 0)
            {
                bytes = new ReadOnlySpan<byte>(_base + address, i).ToArray();
                return 0;
            }
        }
        return -Abi.Errno.ENAMETOOLONG;
    }

    public int TryReadCString(ulong address, int maxLength, out string value)
    {
        int result = TryReadCString(address, maxLength, out byte[] bytes);
        value = result == 0 ? Encoding.UTF8.GetString(bytes) : "";
        return result;
    }

    /// <summary>Direct write access for the VMM (loader, mremap, discards); bypasses guest protections, marks the pages written.</summary>
    public Span<byte> UncheckedSpan(ulong address, int length)
    {
        if (address + (ulong)length > UserEnd || length < 0) throw new ArgumentOutOfRangeException(nameof(address));
        MarkWritten(address, (ulong)length);
        // SAFETY: the range was bounds-checked against UserEnd just above.
        return new Span<byte>(_base + address, length);
    }

    /// <summary>
    /// Tells which pages of a page-aligned range the host ever populated (one byte per page, bit 0 set when resident),
    /// without touching them; false when it cannot tell. The VMM sets it (mincore on the guest mapping).
    /// </summary>
    public Func<ulong, ulong, byte[], bool>? Residency { get; set; }

    private byte[] _residency = [];

    /// <summary>
    /// Copies guest bytes for digests without touching pages the host never populated (they read as zeros anyway):
    /// reading such a page maps the host's shared zero page under the guest, and shadow paging (kvm_pvm) does not
    /// always replace that mapping when the guest later writes there.
    /// </summary>
    public void CopyForDigest(ulong address, Span<byte> destination)
    {
        var source = UncheckedReadOnlySpan(address, destination.Length);
        ulong first = PageAlignDown(address), end = PageAlignUp(address + (ulong)destination.Length);
        int pages = (int)((end - first) >> PageShift);
        if (_residency.Length < pages) _residency = new byte[pages];
        if (Residency is null || !Residency(first, end - first, _residency))
        {
            source.CopyTo(destination);
            return;
        }
        for (int i = 0; i < pages; i++)
        {
            ulong pageStart = Math.Max(first + ((ulong)i << PageShift), address);
            ulong pageEnd = Math.Min(first + ((ulong)(i + 1) << PageShift), address + (ulong)destination.Length);
            var part = destination.Slice((int)(pageStart - address), (int)(pageEnd - pageStart));
            if ((_residency[i] & 1) != 0) source.Slice((int)(pageStart - address), part.Length).CopyTo(part);
            else part.Clear();
        }
    }

    /// <summary>Direct read access for the VMM (digests, exception frames); bypasses guest protections.</summary>
    public ReadOnlySpan<byte> UncheckedReadOnlySpan(ulong address, int length)
    {
        if (address + (ulong)length > UserEnd || length < 0) throw new ArgumentOutOfRangeException(nameof(address));
        // SAFETY: the range was bounds-checked against UserEnd just above.
        return new ReadOnlySpan<byte>(_base + address, length);
    }
}
