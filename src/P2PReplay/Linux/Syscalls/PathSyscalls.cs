using P2PReplay.Linux.Abi;
using P2PReplay.Linux.FileSystem;
using static P2PReplay.Linux.Syscalls.ArgKind;
using static P2PReplay.Linux.Syscalls.FileSyscallSupport;

namespace P2PReplay.Linux.Syscalls;

/// <summary>
/// Path operations: open, stat, access, the directory tree (mkdir, unlink, rename, links), modes and times, cwd.
/// The guest (uid 1000) owns every file, so there are no permission checks beyond access(2) reporting mode bits.
/// </summary>
public static class PathSyscalls
{
    private const int RenameNoReplace = 1, RenameExchange = 2, RenameWhiteout = 4;
    private const ArgKind PathArg = ArgKind.Path;

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(2, "open", SupportLevel.Full, Open, [PathArg, Hex, Octal]),
        new(4, "stat", SupportLevel.Full, Stat, [PathArg, Pointer]),
        new(6, "lstat", SupportLevel.Full, Lstat, [PathArg, Pointer]),
        new(21, "access", SupportLevel.Full, Access, [PathArg, Int]),
        new(76, "truncate", SupportLevel.Full, Truncate, [PathArg, Int]),
        new(79, "getcwd", SupportLevel.Full, Getcwd, [Pointer, Size]),
        new(80, "chdir", SupportLevel.Full, Chdir, [PathArg]),
        new(82, "rename", SupportLevel.Full, Rename, [PathArg, PathArg]),
        new(83, "mkdir", SupportLevel.Full, Mkdir, [PathArg, Octal]),
        new(84, "rmdir", SupportLevel.Full, Rmdir, [PathArg]),
        new(85, "creat", SupportLevel.Full, Creat, [PathArg, Octal]),
        new(86, "link", SupportLevel.Full, Link, [PathArg, PathArg]),
        new(87, "unlink", SupportLevel.Full, Unlink, [PathArg]),
        new(88, "symlink", SupportLevel.Full, Symlink, [PathArg, PathArg]),
        new(89, "readlink", SupportLevel.Full, Readlink, [PathArg, Pointer, Size]),
        new(90, "chmod", SupportLevel.Full, Chmod, [PathArg, Octal]),
        new(92, "chown", SupportLevel.Full, Chown, [PathArg, Int, Int]),
        new(94, "lchown", SupportLevel.Full, Lchown, [PathArg, Int, Int]),
        new(95, "umask", SupportLevel.Full, Umask, [Octal]),
        new(137, "statfs", SupportLevel.Partial, Statfs, [PathArg, Pointer]),
        new(257, "openat", SupportLevel.Full, Openat, [DirFd, PathArg, Hex, Octal]),
        new(258, "mkdirat", SupportLevel.Full, Mkdirat, [DirFd, PathArg, Octal]),
        new(260, "fchownat", SupportLevel.Full, Fchownat, [DirFd, PathArg, Int, Int, Hex]),
        new(262, "newfstatat", SupportLevel.Full, Newfstatat, [DirFd, PathArg, Pointer, Hex]),
        new(263, "unlinkat", SupportLevel.Full, Unlinkat, [DirFd, PathArg, Hex]),
        new(264, "renameat", SupportLevel.Full, Renameat, [DirFd, PathArg, DirFd, PathArg]),
        new(265, "linkat", SupportLevel.Full, Linkat, [DirFd, PathArg, DirFd, PathArg, Hex]),
        new(266, "symlinkat", SupportLevel.Full, Symlinkat, [PathArg, DirFd, PathArg]),
        new(267, "readlinkat", SupportLevel.Full, Readlinkat, [DirFd, PathArg, Pointer, Size]),
        new(268, "fchmodat", SupportLevel.Full, Fchmodat, [DirFd, PathArg, Octal]),
        new(269, "faccessat", SupportLevel.Full, Faccessat, [DirFd, PathArg, Int]),
        new(280, "utimensat", SupportLevel.Full, Utimensat, [DirFd, PathArg, Pointer, Hex]),
        new(316, "renameat2", SupportLevel.Partial, Renameat2, [DirFd, PathArg, DirFd, PathArg, Hex]),
        new(332, "statx", SupportLevel.Full, Statx, [DirFd, PathArg, Hex, Hex, Pointer]),
        new(439, "faccessat2", SupportLevel.Full, Faccessat2, [DirFd, PathArg, Int, Hex]),
    ];

    internal static void SetMode(LinuxProcess p, FsNode node, uint mode)
    {
        node.Permissions = mode & FileModes.PermissionMask;
        node.ChangeTime = Now(p);
    }

    internal static void SetOwner(LinuxProcess p, FsNode node, int uid, int gid)
    {
        if (uid != -1) node.Uid = (uint)uid;
        if (gid != -1) node.Gid = (uint)gid;
        node.ChangeTime = Now(p);
    }

    // ---- open ----

    private static long Open(LinuxProcess p, in SyscallArgs a) => OpenAt(p, AtFlags.FdCwd, a.A0, a.Int(1), (uint)a.A2);

    private static long Openat(LinuxProcess p, in SyscallArgs a) => OpenAt(p, a.Int(0), a.A1, a.Int(2), (uint)a.A3);

    private static long Creat(LinuxProcess p, in SyscallArgs a) =>
        OpenAt(p, AtFlags.FdCwd, a.A0, OpenFlags.Create | OpenFlags.WriteOnly | OpenFlags.Truncate, (uint)a.A1);

    /// <summary>open/openat/creat. O_TMPFILE is not supported (EOPNOTSUPP); opening /proc/self/fd/N shares that description.</summary>
    public static long OpenAt(LinuxProcess p, int dirfd, ulong pathAddress, int flags, uint mode)
    {
        if ((flags & OpenFlags.TmpFile) == OpenFlags.TmpFile) return -Errno.EOPNOTSUPP;
        bool pathOnly = (flags & OpenFlags.Path) != 0;
        if (pathOnly) flags &= OpenFlags.Path | OpenFlags.Directory | OpenFlags.NoFollow | OpenFlags.CloseOnExec;
        int access = flags & OpenFlags.AccessModeMask;
        if (access == OpenFlags.AccessModeMask) return -Errno.EINVAL;
        bool create = (flags & OpenFlags.Create) != 0;
        bool exclusive = create && (flags & OpenFlags.Exclusive) != 0;
        bool noFollow = (flags & OpenFlags.NoFollow) != 0;
        bool closeOnExec = (flags & OpenFlags.CloseOnExec) != 0;
        int result = ResolveAt(p, dirfd, pathAddress, follow: !noFollow && !exclusive, allowEmpty: false, out var lookup);
        if (result != 0) return result;
        if (lookup.Magic is { } magic)
        {
            if ((flags & OpenFlags.Directory) != 0 && magic.Node is not { IsDirectory: true }) return -Errno.ENOTDIR;
            if (exclusive) return -Errno.EEXIST;
            return p.Files.Add(magic, closeOnExec);
        }
        var node = lookup.Node;
        if (node is null)
        {
            if (!create) return -Errno.ENOENT;
            if (lookup.TrailingSlash) return -Errno.EISDIR;
            uint permissions = mode & ~p.Umask & FileModes.PermissionMask;
            result = p.FileSystem.CreateFile(lookup.Parent, lookup.Name, permissions, Now(p), out node);
            if (result != 0) return result;
        }
        else
        {
            if (exclusive) return -Errno.EEXIST;
            if (node.Kind == NodeKind.Symlink && !pathOnly) return -Errno.ELOOP;
            if (create && node.IsDirectory) return -Errno.EISDIR;
            if ((flags & OpenFlags.Directory) != 0 && !node.IsDirectory) return -Errno.ENOTDIR;
            if (!pathOnly && node.IsDirectory && access != OpenFlags.ReadOnly) return -Errno.EISDIR;
            if (!pathOnly && (flags & OpenFlags.Truncate) != 0 && node.Kind == NodeKind.Regular && access != OpenFlags.ReadOnly
                && node.Data!.Length != 0)
            {
                long truncated = FileSyscalls.Truncate(p, node, 0);
                if (truncated < 0) return truncated;
            }
        }
        const int Kept = OpenFlags.AccessModeMask | OpenFlags.Append | OpenFlags.NonBlock | OpenFlags.Path | OpenFlags.Direct
            | OpenFlags.Sync | OpenFlags.Async | OpenFlags.NoAtime;
        var file = new NodeFile(p.FileSystem, p.Host, node, flags & Kept);
        return p.Files.Add(file, closeOnExec);
    }

    // ---- stat ----

    private static long Stat(LinuxProcess p, in SyscallArgs a) => StatAt(p, AtFlags.FdCwd, a.A0, a.A1, 0);

    private static long Lstat(LinuxProcess p, in SyscallArgs a) => StatAt(p, AtFlags.FdCwd, a.A0, a.A1, AtFlags.SymlinkNoFollow);

    private static long Newfstatat(LinuxProcess p, in SyscallArgs a) => StatAt(p, a.Int(0), a.A1, a.A2, a.Int(3));

    private static long StatAt(LinuxProcess p, int dirfd, ulong pathAddress, ulong buffer, int flags)
    {
        if ((flags & ~(AtFlags.SymlinkNoFollow | AtFlags.EmptyPath | AtFlags.NoAutomount)) != 0) return -Errno.EINVAL;
        int result = ResolveAt(p, dirfd, pathAddress, (flags & AtFlags.SymlinkNoFollow) == 0, (flags & AtFlags.EmptyPath) != 0, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is null && lookup.Magic is null) return -Errno.ENOENT;
        var st = StatOf(p, lookup);
        return p.Memory.TryWrite(buffer, in st) ? 0 : -Errno.EFAULT;
    }

    private static long Statx(LinuxProcess p, in SyscallArgs a)
    {
        int dirfd = a.Int(0), flags = a.Int(2);
        const int Allowed = AtFlags.SymlinkNoFollow | AtFlags.EmptyPath | AtFlags.NoAutomount | AtFlags.StatxSyncTypeMask;
        if ((flags & ~Allowed) != 0 || (flags & AtFlags.StatxSyncTypeMask) == AtFlags.StatxSyncTypeMask) return -Errno.EINVAL;
        if ((a.A3 & 0x80000000UL) != 0) return -Errno.EINVAL; // STATX__RESERVED
        bool emptyPath = (flags & AtFlags.EmptyPath) != 0;
        int result;
        Lookup lookup;
        if (a.A1 == 0 && emptyPath) result = ResolveAt(p, dirfd, "", follow: true, allowEmpty: true, out lookup);
        else result = ResolveAt(p, dirfd, a.A1, (flags & AtFlags.SymlinkNoFollow) == 0, emptyPath, out lookup);
        if (result != 0) return result;
        if (lookup.Node is null && lookup.Magic is null) return -Errno.ENOENT;
        var st = StatOf(p, lookup);
        var stx = StatBuilder.ToStatx(st);
        return p.Memory.TryWrite(a.A4, in stx) ? 0 : -Errno.EFAULT;
    }

    private static long Statfs(LinuxProcess p, in SyscallArgs a)
    {
        int result = ResolveAt(p, AtFlags.FdCwd, a.A0, follow: true, allowEmpty: false, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is null) return -Errno.ENOENT;
        var st = MadeUpStatfs();
        return p.Memory.TryWrite(a.A1, in st) ? 0 : -Errno.EFAULT;
    }

    // ---- access ----

    private static long Access(LinuxProcess p, in SyscallArgs a) => AccessAt(p, AtFlags.FdCwd, a.A0, a.Int(1), 0);

    private static long Faccessat(LinuxProcess p, in SyscallArgs a) => AccessAt(p, a.Int(0), a.A1, a.Int(2), 0);

    private static long Faccessat2(LinuxProcess p, in SyscallArgs a) => AccessAt(p, a.Int(0), a.A1, a.Int(2), a.Int(3));

    /// <summary>The guest owns everything: R/W/X_OK test the owner bits, except that X_OK on a file needs any x bit.</summary>
    private static long AccessAt(LinuxProcess p, int dirfd, ulong pathAddress, int mode, int flags)
    {
        if ((mode & ~7) != 0) return -Errno.EINVAL;
        if ((flags & ~(AtFlags.EAccess | AtFlags.SymlinkNoFollow | AtFlags.EmptyPath)) != 0) return -Errno.EINVAL;
        int result = ResolveAt(p, dirfd, pathAddress, (flags & AtFlags.SymlinkNoFollow) == 0, (flags & AtFlags.EmptyPath) != 0, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is null && lookup.Magic is null) return -Errno.ENOENT;
        if (lookup.Magic is not null && lookup.Magic.Node is null) return 0;
        var node = lookup.Node!;
        uint owner = (node.Permissions >> 6) & 7;
        if ((mode & 4) != 0 && (owner & 4) == 0) return -Errno.EACCES;
        if ((mode & 2) != 0 && (owner & 2) == 0) return -Errno.EACCES;
        if ((mode & 1) != 0)
        {
            bool executable = node.IsDirectory ? (owner & 1) != 0 : (node.Permissions & 0x49) != 0;
            if (!executable) return -Errno.EACCES;
        }
        return 0;
    }

    // ---- directories and names ----

    private static long Mkdir(LinuxProcess p, in SyscallArgs a) => MkdirAt(p, AtFlags.FdCwd, a.A0, (uint)a.A1);

    private static long Mkdirat(LinuxProcess p, in SyscallArgs a) => MkdirAt(p, a.Int(0), a.A1, (uint)a.A2);

    private static long MkdirAt(LinuxProcess p, int dirfd, ulong pathAddress, uint mode)
    {
        int result = ResolveAt(p, dirfd, pathAddress, follow: false, allowEmpty: false, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is not null) return -Errno.EEXIST;
        return p.FileSystem.CreateDirectory(lookup.Parent, lookup.Name, mode & ~p.Umask & 0x3FF, Now(p), out _);
    }

    private static long Rmdir(LinuxProcess p, in SyscallArgs a) => UnlinkAt(p, AtFlags.FdCwd, a.A0, AtFlags.RemoveDir);

    private static long Unlink(LinuxProcess p, in SyscallArgs a) => UnlinkAt(p, AtFlags.FdCwd, a.A0, 0);

    private static long Unlinkat(LinuxProcess p, in SyscallArgs a) => UnlinkAt(p, a.Int(0), a.A1, a.Int(2));

    private static long UnlinkAt(LinuxProcess p, int dirfd, ulong pathAddress, int flags)
    {
        if ((flags & ~AtFlags.RemoveDir) != 0) return -Errno.EINVAL;
        bool directory = flags != 0;
        int result = ResolveAt(p, dirfd, pathAddress, follow: false, allowEmpty: false, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is null) return -Errno.ENOENT;
        if (!directory && lookup.Name is "." or "..") return -Errno.EISDIR;
        return p.FileSystem.Remove(lookup.Parent, lookup.Name, directory, Now(p));
    }

    private static long Rename(LinuxProcess p, in SyscallArgs a) => RenameAt(p, AtFlags.FdCwd, a.A0, AtFlags.FdCwd, a.A1, 0);

    private static long Renameat(LinuxProcess p, in SyscallArgs a) => RenameAt(p, a.Int(0), a.A1, a.Int(2), a.A3, 0);

    private static long Renameat2(LinuxProcess p, in SyscallArgs a) => RenameAt(p, a.Int(0), a.A1, a.Int(2), a.A3, a.Int(4));

    /// <summary>rename with flags 0 or RENAME_NOREPLACE; RENAME_EXCHANGE and RENAME_WHITEOUT are not supported (EINVAL).</summary>
    private static long RenameAt(LinuxProcess p, int fromDirfd, ulong fromAddress, int toDirfd, ulong toAddress, int flags)
    {
        if ((flags & ~(RenameNoReplace | RenameExchange | RenameWhiteout)) != 0) return -Errno.EINVAL;
        if ((flags & (RenameExchange | RenameWhiteout)) != 0) return -Errno.EINVAL;
        int result = ResolveAt(p, fromDirfd, fromAddress, follow: false, allowEmpty: false, out var from);
        if (result != 0) return result;
        result = ResolveAt(p, toDirfd, toAddress, follow: false, allowEmpty: false, out var to);
        if (result != 0) return result;
        if (from.Node is null) return -Errno.ENOENT;
        if (to.TrailingSlash && !from.Node.IsDirectory) return -Errno.ENOTDIR;
        return p.FileSystem.Rename(from.Parent, from.Name, to.Parent, to.Name, (flags & RenameNoReplace) != 0, Now(p));
    }

    private static long Link(LinuxProcess p, in SyscallArgs a) => LinkAt(p, AtFlags.FdCwd, a.A0, AtFlags.FdCwd, a.A1, 0);

    private static long Linkat(LinuxProcess p, in SyscallArgs a) => LinkAt(p, a.Int(0), a.A1, a.Int(2), a.A3, a.Int(4));

    private static long LinkAt(LinuxProcess p, int fromDirfd, ulong fromAddress, int toDirfd, ulong toAddress, int flags)
    {
        if ((flags & ~(AtFlags.SymlinkFollow | AtFlags.EmptyPath)) != 0) return -Errno.EINVAL;
        int result = ResolveAt(p, fromDirfd, fromAddress, (flags & AtFlags.SymlinkFollow) != 0, (flags & AtFlags.EmptyPath) != 0, out var from);
        if (result != 0) return result;
        if (from.Node is null || (from.Magic is not null && from.Magic.Node is null)) return -Errno.ENOENT;
        result = ResolveAt(p, toDirfd, toAddress, follow: false, allowEmpty: false, out var to);
        if (result != 0) return result;
        if (to.Node is not null) return -Errno.EEXIST;
        if (to.TrailingSlash) return -Errno.ENOENT;
        return p.FileSystem.Link(to.Parent, to.Name, from.Node, Now(p));
    }

    private static long Symlink(LinuxProcess p, in SyscallArgs a) => SymlinkAt(p, a.A0, AtFlags.FdCwd, a.A1);

    private static long Symlinkat(LinuxProcess p, in SyscallArgs a) => SymlinkAt(p, a.A0, a.Int(1), a.A2);

    private static long SymlinkAt(LinuxProcess p, ulong targetAddress, int dirfd, ulong linkAddress)
    {
        int result = ReadPath(p, targetAddress, out string target);
        if (result != 0) return result;
        if (target.Length == 0) return -Errno.ENOENT;
        result = ResolveAt(p, dirfd, linkAddress, follow: false, allowEmpty: false, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is not null) return -Errno.EEXIST;
        if (lookup.TrailingSlash) return -Errno.ENOENT;
        return p.FileSystem.CreateSymlink(lookup.Parent, lookup.Name, target, Now(p), out _);
    }

    private static long Readlink(LinuxProcess p, in SyscallArgs a) => ReadlinkAt(p, AtFlags.FdCwd, a.A0, a.A1, a.A2);

    private static long Readlinkat(LinuxProcess p, in SyscallArgs a) => ReadlinkAt(p, a.Int(0), a.A1, a.A2, a.A3);

    private static long ReadlinkAt(LinuxProcess p, int dirfd, ulong pathAddress, ulong buffer, ulong size)
    {
        if ((int)size <= 0) return -Errno.EINVAL;
        int result = ResolveAt(p, dirfd, pathAddress, follow: false, allowEmpty: true, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is null) return -Errno.ENOENT;
        if (lookup.Node.Kind != NodeKind.Symlink) return -Errno.EINVAL;
        byte[] text = VirtualFileSystem.GuestBytes(p.FileSystem.ReadLink(p, lookup.Node));
        int n = Math.Min(text.Length, (int)size);
        return p.Memory.TryWrite(buffer, text.AsSpan(0, n)) ? n : -Errno.EFAULT;
    }

    // ---- attributes ----

    private static long Chmod(LinuxProcess p, in SyscallArgs a) => ChmodAt(p, AtFlags.FdCwd, a.A0, (uint)a.A1);

    private static long Fchmodat(LinuxProcess p, in SyscallArgs a) => ChmodAt(p, a.Int(0), a.A1, (uint)a.A2);

    private static long ChmodAt(LinuxProcess p, int dirfd, ulong pathAddress, uint mode)
    {
        int result = ResolveAt(p, dirfd, pathAddress, follow: true, allowEmpty: false, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is null) return -Errno.ENOENT;
        if (lookup.Magic is null || lookup.Magic.Node is not null) SetMode(p, lookup.Node, mode);
        return 0;
    }

    private static long Chown(LinuxProcess p, in SyscallArgs a) => ChownAt(p, AtFlags.FdCwd, a.A0, a.Int(1), a.Int(2), 0);

    private static long Lchown(LinuxProcess p, in SyscallArgs a) =>
        ChownAt(p, AtFlags.FdCwd, a.A0, a.Int(1), a.Int(2), AtFlags.SymlinkNoFollow);

    private static long Fchownat(LinuxProcess p, in SyscallArgs a) => ChownAt(p, a.Int(0), a.A1, a.Int(2), a.Int(3), a.Int(4));

    /// <summary>Ownership is recorded (stat shows it) but never checked.</summary>
    private static long ChownAt(LinuxProcess p, int dirfd, ulong pathAddress, int uid, int gid, int flags)
    {
        if ((flags & ~(AtFlags.SymlinkNoFollow | AtFlags.EmptyPath)) != 0) return -Errno.EINVAL;
        int result = ResolveAt(p, dirfd, pathAddress, (flags & AtFlags.SymlinkNoFollow) == 0, (flags & AtFlags.EmptyPath) != 0, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is null) return -Errno.ENOENT;
        if (lookup.Magic is null || lookup.Magic.Node is not null) SetOwner(p, lookup.Node, uid, gid);
        return 0;
    }

    private static long Utimensat(LinuxProcess p, in SyscallArgs a)
    {
        int dirfd = a.Int(0), flags = a.Int(3);
        if ((flags & ~(AtFlags.SymlinkNoFollow | AtFlags.EmptyPath)) != 0) return -Errno.EINVAL;
        Timespec access = new() { Nsec = Timespec.UtimeNow }, modify = new() { Nsec = Timespec.UtimeNow };
        if (a.A2 != 0)
        {
            if (!p.Memory.TryRead(a.A2, out access) || !p.Memory.TryRead(a.A2 + 16, out modify)) return -Errno.EFAULT;
            if (!ValidTime(access) || !ValidTime(modify)) return -Errno.EINVAL;
        }
        int result;
        Lookup lookup;
        if (a.A1 == 0)
        {
            // futimens: a NULL path means dirfd itself.
            if (dirfd == AtFlags.FdCwd) return -Errno.EFAULT;
            result = ResolveAt(p, dirfd, "", follow: true, allowEmpty: true, out lookup);
        }
        else
        {
            result = ResolveAt(p, dirfd, a.A1, (flags & AtFlags.SymlinkNoFollow) == 0, (flags & AtFlags.EmptyPath) != 0, out lookup);
        }
        if (result != 0) return result;
        if (lookup.Node is null) return -Errno.ENOENT;
        if (lookup.Magic is not null && lookup.Magic.Node is null) return 0;
        var node = lookup.Node;
        long now = Now(p);
        if (access.Nsec != Timespec.UtimeOmit) node.AccessTime = access.Nsec == Timespec.UtimeNow ? now : ToNanoseconds(access);
        if (modify.Nsec != Timespec.UtimeOmit) node.ModifyTime = modify.Nsec == Timespec.UtimeNow ? now : ToNanoseconds(modify);
        node.ChangeTime = now;
        return 0;
    }

    private static bool ValidTime(in Timespec t) =>
        t.Nsec is Timespec.UtimeNow or Timespec.UtimeOmit || (t.Nsec is >= 0 and < 1_000_000_000);

    private static long ToNanoseconds(in Timespec t)
    {
        // Times far outside what 64-bit nanoseconds hold are clamped (stat shows the clamped value).
        const long Limit = long.MaxValue / 1_000_000_000L - 1;
        return Math.Clamp(t.Sec, -Limit, Limit) * 1_000_000_000L + t.Nsec;
    }

    private static long Truncate(LinuxProcess p, in SyscallArgs a)
    {
        int result = ResolveAt(p, AtFlags.FdCwd, a.A0, follow: true, allowEmpty: false, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is null) return -Errno.ENOENT;
        if (lookup.Node.IsDirectory) return -Errno.EISDIR;
        if (lookup.Node.Kind != NodeKind.Regular) return -Errno.EINVAL;
        return FileSyscalls.Truncate(p, lookup.Node, (long)a.A1);
    }

    // ---- working directory ----

    private static long Getcwd(LinuxProcess p, in SyscallArgs a)
    {
        string? path = p.FileSystem.PathOf(p.Files.CurrentDirectory);
        if (path is null) return -Errno.ENOENT;
        byte[] bytes = VirtualFileSystem.GuestBytes(path + "\0");
        if (a.A1 < (ulong)bytes.Length) return -Errno.ERANGE;
        return p.Memory.TryWrite(a.A0, bytes) ? bytes.Length : -Errno.EFAULT;
    }

    private static long Chdir(LinuxProcess p, in SyscallArgs a)
    {
        int result = ResolveAt(p, AtFlags.FdCwd, a.A0, follow: true, allowEmpty: false, out var lookup);
        if (result != 0) return result;
        if (lookup.Node is null) return -Errno.ENOENT;
        if (!lookup.Node.IsDirectory) return -Errno.ENOTDIR;
        p.Files.CurrentDirectory = lookup.Node;
        return 0;
    }

    private static long Umask(LinuxProcess p, in SyscallArgs a)
    {
        uint old = p.Umask;
        p.Umask = (uint)a.A0 & 0x1FF;
        return old;
    }
}
