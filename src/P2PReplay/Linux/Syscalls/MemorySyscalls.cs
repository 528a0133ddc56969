using P2PReplay.Linux.Abi;
using P2PReplay.Linux.Memory;
using static P2PReplay.Linux.Syscalls.ArgKind;

namespace P2PReplay.Linux.Syscalls;

/// <summary>brk, mmap, munmap, mprotect, mremap, madvise and friends.</summary>
public static class MemorySyscalls
{
    private const int MapShared = 0x01, MapPrivate = 0x02, MapSharedValidate = 0x03, MapFixed = 0x10, MapAnonymous = 0x20,
        MapFixedNoReplace = 0x100000;
    private const int MadvDontNeed = 4;

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(9, "mmap", SupportLevel.Partial, Mmap, [Pointer, Size, Hex, Hex, Fd, Hex]),
        new(10, "mprotect", SupportLevel.Full, Mprotect, [Pointer, Size, Hex]),
        new(11, "munmap", SupportLevel.Full, Munmap, [Pointer, Size]),
        new(12, "brk", SupportLevel.Full, Brk, [Pointer]),
        new(25, "mremap", SupportLevel.Full, Mremap, [Pointer, Size, Size, Hex, Pointer]),
        new(26, "msync", SupportLevel.NoOp, Msync, [Pointer, Size, Hex]),
        new(28, "madvise", SupportLevel.Partial, Madvise, [Pointer, Size, Int]),
        new(149, "mlock", SupportLevel.NoOp, static (_, in _) => 0, [Pointer, Size]),
        new(150, "munlock", SupportLevel.NoOp, static (_, in _) => 0, [Pointer, Size]),
    ];

    /// <summary>PROT_* bits map straight onto <see cref="Protection"/>; others are invalid.</summary>
    public static bool TryDecodeProtection(ulong prot, out Protection protection)
    {
        protection = (Protection)(prot & 7);
        return (prot & ~7UL) == 0;
    }

    private static long Brk(LinuxProcess p, in SyscallArgs a) => (long)p.AddressSpace.SetBrk(a.A0);

    private static long Mmap(LinuxProcess p, in SyscallArgs a)
    {
        ulong address = a.A0, length = a.A1, offset = a.A5;
        int flags = a.Int(3), fd = a.Int(4);
        if (!TryDecodeProtection(a.A2, out var protection)) return -Errno.EINVAL;
        int type = flags & 0x3;
        if (type != MapPrivate && type != MapShared && type != MapSharedValidate) return -Errno.EINVAL;
        if (offset % GuestMemory.PageSize != 0 || length == 0 || length > p.Memory.UserEnd) return -Errno.EINVAL;
        bool anonymous = (flags & MapAnonymous) != 0;
        FileSystem.OpenFile? file = null;
        if (!anonymous)
        {
            file = p.Files.Get(fd);
            if (file is null) return -Errno.EBADF;
        }
        bool fixedAddress = (flags & (MapFixed | MapFixedNoReplace)) != 0;
        long mapped = p.AddressSpace.Map(address, length, protection, fixedAddress, (flags & MapFixedNoReplace) != 0);
        if (mapped < 0 || file is null) return mapped;
        // File mappings are private copies: the bytes are read once now (MAP_SHARED writes are not written back).
        ulong remaining = GuestMemory.PageAlignUp(length);
        ulong position = 0;
        while (position < remaining)
        {
            int chunk = (int)Math.Min(remaining - position, 1 << 20);
            var target = p.Memory.UncheckedSpan((ulong)mapped + position, chunk);
            long read = file.PRead(target, (long)(offset + position));
            if (read < 0)
            {
                p.AddressSpace.Unmap((ulong)mapped, remaining);
                return read;
            }
            if (read < chunk) break;
            position += (ulong)chunk;
        }
        return mapped;
    }

    private static long Munmap(LinuxProcess p, in SyscallArgs a) => p.AddressSpace.Unmap(a.A0, a.A1);

    private static long Mprotect(LinuxProcess p, in SyscallArgs a)
    {
        if (!TryDecodeProtection(a.A2 & ~0x3000000UL /* PROT_GROWSDOWN|PROT_GROWSUP */, out var protection)) return -Errno.EINVAL;
        return p.AddressSpace.Protect(a.A0, a.A1, protection);
    }

    private static long Mremap(LinuxProcess p, in SyscallArgs a) => p.AddressSpace.Remap(a.A0, a.A1, a.A2, a.Int(3), a.A4);

    private static long Msync(LinuxProcess p, in SyscallArgs a) =>
        a.A0 % GuestMemory.PageSize != 0 ? -Errno.EINVAL : p.AddressSpace.IsMapped(a.A0, GuestMemory.PageAlignUp(a.A1)) ? 0 : -Errno.ENOMEM;

    private static long Madvise(LinuxProcess p, in SyscallArgs a)
    {
        if (a.A0 % GuestMemory.PageSize != 0) return -Errno.EINVAL;
        if (a.Int(2) == MadvDontNeed) return p.AddressSpace.DiscardPages(a.A0, a.A1);
        // Every other advice is a hint about host paging, invisible to the guest.
        return 0;
    }
}
