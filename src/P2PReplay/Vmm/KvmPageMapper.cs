using P2PReplay.Guest;
using P2PReplay.Interop;
using P2PReplay.Linux.Memory;

namespace P2PReplay.Vmm;

/// <summary>Applies the personality's address-space changes to the x86 page tables and the host mapping.</summary>
internal sealed class KvmPageMapper(PageTables tables, SafeMappedMemory memory) : IPageMapper
{
    public void SetProtection(ulong start, ulong length, Protection protection)
    {
        var access = PageAccess.None;
        if (protection != Protection.None)
        {
            access = PageAccess.User | PageAccess.Read;
            if ((protection & Protection.Write) != 0) access |= PageAccess.Write;
            if ((protection & Protection.Execute) != 0) access |= PageAccess.Execute;
        }
        // Upgrades take effect at once; downgrades need a TLB flush that shadow paging (kvm_pvm) ignores, so on such
        // hosts a guest may still reach pages it unmapped. They read as zeros (Discard), so results stay deterministic.
        tables.Map(start, length, access);
    }

    public void Discard(ulong start, ulong length) => memory.Discard(start, length);
}
