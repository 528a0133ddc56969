using P2PReplay.Linux.Abi;
using P2PReplay.Linux.FileSystem;
using P2PReplay.Linux.Memory;

namespace P2PReplay.Linux.Syscalls;

/// <summary>Shared argument handling of the file families: guest buffers, paths and *at() resolution.</summary>
internal static class FileSyscallSupport
{
    /// <summary>Linux caps one read or write at MAX_RW_COUNT.</summary>
    public const long MaxTransfer = 0x7FFFF000;

    public static long Now(LinuxProcess p) => p.Host.RealtimeNanoseconds();

    /// <summary>
    /// The part of a guest buffer starting at <paramref name="address"/> that is accessible, up to <paramref name="count"/>
    /// (clamped to MAX_RW_COUNT): a transfer stops at the first inaccessible page, as Linux's does. 0 only when count is 0;
    /// -EFAULT when not even the first byte is accessible.
    /// </summary>
    public static long AccessibleLength(GuestMemory memory, ulong address, ulong count, Protection needed)
    {
        long wanted = (long)Math.Min(count, (ulong)MaxTransfer);
        if (wanted == 0) return 0;
        long accessible = 0;
        ulong cursor = address;
        while (accessible < wanted)
        {
            if (cursor < address || cursor >= memory.UserEnd) break; // wrapped or past the end
            if ((memory.GetProtection(cursor) & needed) != needed) break;
            ulong pageEnd = GuestMemory.PageAlignDown(cursor) + GuestMemory.PageSize;
            accessible += (long)(pageEnd - cursor);
            cursor = pageEnd;
            if (cursor == 0) break;
        }
        return accessible == 0 ? -Errno.EFAULT : Math.Min(accessible, wanted);
    }

    /// <summary>A guest buffer the kernel fills (read); false with -errno in <paramref name="error"/>.</summary>
    public static bool TryOutBuffer(LinuxProcess p, ulong address, ulong count, out Span<byte> span, out long error)
    {
        span = default;
        error = AccessibleLength(p.Memory, address, count, Protection.Write);
        if (error < 0) return false;
        if (!p.Memory.TryGetWritable(address, (int)error, out span))
        {
            error = -Errno.EFAULT;
            return false;
        }
        error = 0;
        return true;
    }

    /// <summary>A guest buffer the kernel consumes (write); false with -errno in <paramref name="error"/>.</summary>
    public static bool TryInBuffer(LinuxProcess p, ulong address, ulong count, out ReadOnlySpan<byte> span, out long error)
    {
        span = default;
        error = AccessibleLength(p.Memory, address, count, Protection.Read);
        if (error < 0) return false;
        if (!p.Memory.TryGetReadable(address, (int)error, out span))
        {
            error = -Errno.EFAULT;
            return false;
        }
        error = 0;
        return true;
    }

    /// <summary>Reads a path argument (PATH_MAX 4096 with its NUL): 0, -EFAULT or -ENAMETOOLONG.</summary>
    public static int ReadPath(LinuxProcess p, ulong address, out string path)
    {
        path = "";
        int result = p.Memory.TryReadCString(address, VirtualFileSystem.MaxPath - 1, out byte[] bytes);
        if (result != 0) return result;
        path = VirtualFileSystem.FromGuestBytes(bytes);
        return 0;
    }

    /// <summary>The directory a relative path starts from: the cwd for AT_FDCWD, else the directory open at dirfd.</summary>
    public static int StartDirectory(LinuxProcess p, int dirfd, string path, out FsNode start)
    {
        start = p.FileSystem.Root;
        if (path.Length > 0 && path[0] == '/') return 0;
        if (dirfd == AtFlags.FdCwd)
        {
            start = p.Files.CurrentDirectory;
            return 0;
        }
        var file = p.Files.Get(dirfd);
        if (file is null) return -Errno.EBADF;
        if (file.Node is not { IsDirectory: true } node) return -Errno.ENOTDIR;
        start = node;
        return 0;
    }

    /// <summary>
    /// Reads and resolves a path argument relative to dirfd. With <paramref name="allowEmpty"/> (AT_EMPTY_PATH) an empty
    /// path names dirfd itself: the lookup then carries the description in Magic.
    /// </summary>
    public static int ResolveAt(LinuxProcess p, int dirfd, ulong pathAddress, bool follow, bool allowEmpty, out Lookup lookup)
    {
        lookup = default;
        int result = ReadPath(p, pathAddress, out string path);
        if (result != 0) return result;
        return ResolveAt(p, dirfd, path, follow, allowEmpty, out lookup);
    }

    public static int ResolveAt(LinuxProcess p, int dirfd, string path, bool follow, bool allowEmpty, out Lookup lookup)
    {
        lookup = default;
        if (path.Length == 0)
        {
            if (!allowEmpty) return -Errno.ENOENT;
            if (dirfd == AtFlags.FdCwd)
            {
                var cwd = p.Files.CurrentDirectory;
                lookup = new Lookup(cwd.Parent ?? cwd, ".", cwd, false, null);
                return 0;
            }
            var file = p.Files.Get(dirfd);
            if (file is null) return -Errno.EBADF;
            lookup = new Lookup(file.Node?.Parent ?? p.FileSystem.Root, "", file.Node, false, file);
            return 0;
        }
        int result = StartDirectory(p, dirfd, path, out var start);
        if (result != 0) return result;
        return p.FileSystem.Resolve(p, start, path, follow, out lookup);
    }

    /// <summary>stat of what a lookup found: the description for magic links, else the node.</summary>
    public static LinuxStat StatOf(LinuxProcess p, in Lookup lookup) =>
        lookup.Magic is { } file ? file.Stat(p.FileSystem) : StatBuilder.ForNode(p.FileSystem, lookup.Node!);

    public static bool IsValidResult(long result) => result >= 0 || (result >= -4095 && Errno.Name((int)-result)[0] == 'E');

    /// <summary>The made-up statfs: a 4 GiB tmpfs-like file system, the same on every host.</summary>
    public static LinuxStatfs MadeUpStatfs() => new()
    {
        Type = 0x01021994, // TMPFS_MAGIC
        BlockSize = 4096,
        Blocks = 1 << 20,
        BlocksFree = 1 << 19,
        BlocksAvailable = 1 << 19,
        Files = 1 << 20,
        FilesFree = 1 << 19,
        NameLength = VirtualFileSystem.MaxNameLength,
        FragmentSize = 4096,
        Flags = 0x20 | 0x400, // ST_VALID | ST_NOATIME: reads never change timestamps
    };
}
