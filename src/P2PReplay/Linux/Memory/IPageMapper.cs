namespace P2PReplay.Linux.Memory;

/// <summary>
/// What the personality needs from the machine underneath when the guest's address space changes:
/// the VMM implements it with x86 page tables and host madvise. Ranges are page-aligned.
/// </summary>
public interface IPageMapper
{
    /// <summary>Make [start, start+length) visible to the guest with the given protection (None = not present).</summary>
    void SetProtection(ulong start, ulong length, Protection protection);

    /// <summary>Zero the contents of [start, start+length) (the pages were unmapped or discarded).</summary>
    void Discard(ulong start, ulong length);
}
