using System.Text;
using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.FileSystem;

/// <summary>The outcome of walking a path: the directory holding the last component, its name, and the node if it exists.</summary>
/// <param name="Magic">for /proc/self/fd/N (and /dev/std*): the open description the link stands for</param>
public readonly record struct Lookup(FsNode Parent, string Name, FsNode? Node, bool TrailingSlash, OpenFile? Magic);

/// <summary>
/// The guest's file tree: a read-only image (a host directory, read lazily and never written) merged with a
/// writable in-memory layer that is part of VM state. Every path component is resolved here, inside the tree,
/// so ".." stops at the root and symlinks (absolute ones too) resolve inside the image, never on the host.
/// <para>Determinism: inode numbers are handed out in order of first materialisation (a directory's entries in
/// sorted order when it is first listed), all nodes are owned by uid/gid 1000 (the guest owns everything),
/// image files have timestamp 0 and their host permission bits, layer changes are stamped with the guest's
/// realtime clock (a logged input). Directory order is ordinal byte order. No host metadata other than names,
/// sizes, permission bits, symlink targets and contents reaches the guest.</para>
/// <para>Images should hold only directories, regular files and symlinks: host device nodes are seen as
/// regular files (the VFS supplies its own /dev).</para>
/// </summary>
public sealed class VirtualFileSystem
{
    /// <summary>st_dev of every node of the tree.</summary>
    public const ulong DeviceId = 0x801;
    public const int MaxNameLength = 255;
    public const int MaxPath = 4096;
    public const int MaxSymlinks = 40;
    public const uint RootInode = 2;

    private static readonly EnumerationOptions HostEnumeration = new()
    {
        AttributesToSkip = 0,
        IgnoreInaccessible = true,
        RecurseSubdirectories = false,
        ReturnSpecialDirectories = false,
    };

    private readonly Dictionary<int, FsNode> _fdLinks = [];
    private ulong _nextInode = RootInode;

    /// <param name="imageRoot">host directory that is the read-only VM image, or null for an empty root</param>
    /// <param name="extraFiles">files placed into the image at absolute guest paths (the program when the image lacks it)</param>
    public VirtualFileSystem(string? imageRoot, IReadOnlyDictionary<string, byte[]> extraFiles)
    {
        ImageRoot = imageRoot is null ? null : Path.GetFullPath(imageRoot);
        ExtraFiles = extraFiles;
        Root = NewNode(NodeKind.Directory, 0x1ED);
        Root.Parent = Root;
        Root.Name = "/";
        if (ImageRoot is not null)
        {
            if (!Directory.Exists(ImageRoot)) throw new DirectoryNotFoundException($"image root {ImageRoot} does not exist");
            Root.SetHostDirectory(ImageRoot);
        }
        // Extra files first, in sorted order, so that inode numbers do not depend on dictionary order.
        foreach (string path in extraFiles.Keys.Order(StringComparer.Ordinal))
        {
            var (dir, name) = EnsureParent(ToGuestName(path));
            Attach(dir, name, NewNode(NodeKind.Regular, 0x1ED, data: FileData.FromBytes(extraFiles[path])));
        }
        BuildSyntheticTree();
    }

    public string? ImageRoot { get; }

    /// <summary>Snapshots: the next inode number to hand out.</summary>
    internal ulong NextInode
    {
        get => _nextInode;
        set => _nextInode = value;
    }

    /// <summary>Snapshots: the /proc/self/fd/N link nodes made so far.</summary>
    internal Dictionary<int, FsNode> FdLinks => _fdLinks;

    public IReadOnlyDictionary<string, byte[]> ExtraFiles { get; }

    public FsNode Root { get; }

    /// <summary>Guest names are byte strings carried as Latin-1 strings; host and .NET strings convert through UTF-8.</summary>
    public static string ToGuestName(string text) => Encoding.Latin1.GetString(Encoding.UTF8.GetBytes(text));

    public static string ToHostString(string guestName) => Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(guestName));

    public static byte[] GuestBytes(string guestName) => Encoding.Latin1.GetBytes(guestName);

    public static string FromGuestBytes(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);

    /// <summary>Reads a whole file by absolute path, following symlinks (the loader uses it); null when absent or not regular.</summary>
    public byte[]? ReadFile(string path)
    {
        if (Resolve(null, Root, ToGuestName(path), followFinal: true, out var lookup) != 0) return null;
        return lookup.Node is { Kind: NodeKind.Regular, Data: { } data } ? data.ReadAll() : null;
    }

    /// <summary>
    /// Walks a path from <paramref name="start"/> (absolute paths start at the root). Intermediate symlinks are
    /// always followed, the last one only when <paramref name="followFinal"/> or the path ends in '/'.
    /// A missing last component is not an error: the lookup has Node = null. Returns 0 or -errno.
    /// </summary>
    public int Resolve(LinuxProcess? process, FsNode start, string path, bool followFinal, out Lookup lookup)
    {
        lookup = default;
        if (path.Length == 0) return -Errno.ENOENT;
        if (path.Length >= MaxPath) return -Errno.ENAMETOOLONG;
        bool trailingSlash = path[^1] == '/';
        var pending = new List<string>();
        PushComponents(pending, path);
        var current = path[0] == '/' ? Root : start;
        int symlinks = 0;
        if (pending.Count == 0)
        {
            lookup = new Lookup(current.Parent ?? Root, ".", current, trailingSlash, null);
            return 0;
        }
        while (pending.Count > 0)
        {
            string name = pending[^1];
            pending.RemoveAt(pending.Count - 1);
            bool last = pending.Count == 0;
            if (!current.IsDirectory) return -Errno.ENOTDIR;
            if (name.Length > MaxNameLength) return -Errno.ENAMETOOLONG;
            FsNode? child = name switch
            {
                "." => current,
                ".." => current.Parent ?? Root,
                _ => Child(process, current, name),
            };
            if (child is null)
            {
                if (!last) return -Errno.ENOENT;
                lookup = new Lookup(current, name, null, trailingSlash, null);
                return 0;
            }
            bool follow = !last || followFinal || trailingSlash;
            if (child.Kind == NodeKind.Symlink && follow && name is not ("." or ".."))
            {
                if (++symlinks > MaxSymlinks) return -Errno.ELOOP;
                if (child.Proc == ProcKind.FdLink)
                {
                    var file = process?.Files.Get(child.FdNumber);
                    if (file is null) return -Errno.ENOENT;
                    var target = file.Node;
                    if (last)
                    {
                        lookup = new Lookup(current, name, target ?? child, trailingSlash, file);
                        return target is { IsDirectory: false } && trailingSlash ? -Errno.ENOTDIR : 0;
                    }
                    if (target is null) return -Errno.ENOTDIR;
                    current = target;
                    continue;
                }
                string linkTarget = ReadLink(process, child);
                if (linkTarget.Length == 0) return -Errno.ENOENT;
                if (linkTarget[0] == '/') current = Root;
                if (last && trailingSlash) pending.Add(".");
                PushComponents(pending, linkTarget);
                if (pending.Count == 0)
                {
                    // The link pointed at "/" (or only slashes): the result is the directory reached.
                    lookup = new Lookup(current.Parent ?? Root, ".", current, trailingSlash, null);
                    return 0;
                }
                continue;
            }
            if (last)
            {
                if (trailingSlash && !child.IsDirectory && !(child.Kind == NodeKind.Symlink && !follow)) return -Errno.ENOTDIR;
                var parent = name switch { "." or ".." => child.Parent ?? Root, _ => current };
                lookup = new Lookup(parent, name, child, trailingSlash, null);
                return 0;
            }
            current = child;
        }
        return -Errno.ENOENT; // not reached: the loop returns on its last component
    }

    /// <summary>Pushes a path's components so that the first one is popped first.</summary>
    private static void PushComponents(List<string> pending, string path)
    {
        int insertAt = pending.Count;
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries)) pending.Insert(insertAt, part);
    }

    /// <summary>The entry of a directory (dynamic for /proc/self/fd), or null.</summary>
    public FsNode? Child(LinuxProcess? process, FsNode directory, string name)
    {
        if (directory.Proc == ProcKind.FdDirectory)
        {
            if (!int.TryParse(name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int fd)
                || fd.ToString(System.Globalization.CultureInfo.InvariantCulture) != name || process?.Files.Get(fd) is null)
                return null;
            return FdLink(directory, fd);
        }
        return directory.Children(this).TryGetValue(name, out var child) ? child : null;
    }

    /// <summary>A directory's entries in ordinal name order ("." and ".." are the caller's).</summary>
    public List<(string Name, FsNode Node)> List(LinuxProcess? process, FsNode directory)
    {
        var entries = new List<(string, FsNode)>();
        if (directory.Proc == ProcKind.FdDirectory)
        {
            if (process is null) return entries;
            var names = process.Files.OpenDescriptors().Select(fd => fd.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .Order(StringComparer.Ordinal);
            foreach (string name in names) entries.Add((name, FdLink(directory, int.Parse(name, System.Globalization.CultureInfo.InvariantCulture))));
            return entries;
        }
        foreach (var (name, node) in directory.Children(this)) entries.Add((name, node));
        return entries;
    }

    /// <summary>The text of a symlink (dynamic ones included).</summary>
    public string ReadLink(LinuxProcess? process, FsNode link) => link.Proc switch
    {
        ProcKind.SelfExe => process is null ? "" : ToGuestName(process.ExecutablePath),
        ProcKind.FdLink => process?.Files.Get(link.FdNumber)?.LinkText(this) ?? "",
        _ => link.SymlinkTarget ?? "",
    };

    /// <summary>The absolute guest path of a node's last name (for getcwd and /proc/self/fd); null when unlinked.</summary>
    public string? PathOf(FsNode node)
    {
        if (node == Root) return "/";
        var parts = new List<string>();
        for (var n = node; n != Root; n = n.Parent)
        {
            if (n is null || n.Unlinked || n.Parent is null) return null;
            parts.Add(n.Name);
        }
        parts.Reverse();
        return "/" + string.Join('/', parts);
    }

    /// <summary>Directory link count: 2 plus one per subdirectory; other nodes their hard-link count.</summary>
    public ulong LinkCount(FsNode node)
    {
        if (!node.IsDirectory) return (ulong)Math.Max(node.Unlinked ? 0 : 1, node.LinkCount);
        if (node.Proc == ProcKind.FdDirectory) return 2;
        ulong count = 2;
        foreach (var child in node.Children(this).Values) if (child.IsDirectory) count++;
        return count;
    }

    /// <summary>True when the guest may add or remove entries (not in the made-up /proc/self/fd).</summary>
    public static bool IsMutableDirectory(FsNode directory) => directory.Proc == ProcKind.None && !directory.Unlinked;

    public int CreateFile(FsNode directory, string name, uint permissions, long now, out FsNode node)
    {
        node = NewNode(NodeKind.Regular, permissions, now, FileData.Empty());
        return AttachNew(directory, name, node, now);
    }

    public int CreateDirectory(FsNode directory, string name, uint permissions, long now, out FsNode node)
    {
        node = NewNode(NodeKind.Directory, permissions, now);
        return AttachNew(directory, name, node, now);
    }

    public int CreateSymlink(FsNode directory, string name, string target, long now, out FsNode node)
    {
        node = NewNode(NodeKind.Symlink, 0x1FF, now, target: target);
        return AttachNew(directory, name, node, now);
    }

    /// <summary>link(2) for a non-directory.</summary>
    public int Link(FsNode directory, string name, FsNode node, long now)
    {
        if (node.IsDirectory) return -Errno.EPERM;
        if (node.Unlinked || node.Proc != ProcKind.None) return -Errno.ENOENT;
        int result = AttachNew(directory, name, node, now);
        if (result != 0) return result;
        node.LinkCount++;
        node.ChangeTime = now;
        return 0;
    }

    /// <summary>unlink(2) (directory false) or rmdir(2) (directory true) of an existing entry.</summary>
    public int Remove(FsNode directory, string name, bool removeDirectory, long now)
    {
        if (removeDirectory && name == ".") return -Errno.EINVAL;
        if (removeDirectory && name == "..") return -Errno.ENOTEMPTY;
        if (!IsMutableDirectory(directory)) return -Errno.EACCES;
        var children = directory.Children(this);
        if (!children.TryGetValue(name, out var node)) return -Errno.ENOENT;
        if (removeDirectory)
        {
            if (!node.IsDirectory) return -Errno.ENOTDIR;
            if (node == Root) return -Errno.EBUSY;
            if (node.Proc != ProcKind.None) return -Errno.EBUSY;
            if (node.Children(this).Count != 0) return -Errno.ENOTEMPTY;
        }
        else if (node.IsDirectory)
        {
            return -Errno.EISDIR;
        }
        Detach(directory, name, node, now);
        return 0;
    }

    /// <summary>rename(2)/renameat2 with flags 0 or RENAME_NOREPLACE.</summary>
    public int Rename(FsNode fromDirectory, string fromName, FsNode toDirectory, string toName, bool noReplace, long now)
    {
        if (fromName is "." or ".." || toName is "." or "..") return -Errno.EBUSY;
        if (!IsMutableDirectory(fromDirectory) || !IsMutableDirectory(toDirectory)) return -Errno.EACCES;
        var fromChildren = fromDirectory.Children(this);
        if (!fromChildren.TryGetValue(fromName, out var node)) return -Errno.ENOENT;
        var toChildren = toDirectory.Children(this);
        toChildren.TryGetValue(toName, out var existing);
        if (existing == node) return noReplace ? -Errno.EEXIST : 0;
        if (node.IsDirectory)
        {
            // A directory cannot move below itself.
            for (var d = toDirectory; ; d = d.Parent!)
            {
                if (d == node) return -Errno.EINVAL;
                if (d == Root || d.Parent is null) break;
            }
        }
        if (existing is not null)
        {
            if (noReplace) return -Errno.EEXIST;
            if (node.IsDirectory && !existing.IsDirectory) return -Errno.ENOTDIR;
            if (!node.IsDirectory && existing.IsDirectory) return -Errno.EISDIR;
            if (existing.IsDirectory && existing.Children(this).Count != 0) return -Errno.ENOTEMPTY;
            Detach(toDirectory, toName, existing, now);
        }
        fromChildren.Remove(fromName);
        toChildren[toName] = node;
        if (node.Parent == fromDirectory && node.Name == fromName)
        {
            node.Parent = toDirectory;
            node.Name = toName;
        }
        node.ChangeTime = now;
        fromDirectory.ModifyTime = fromDirectory.ChangeTime = now;
        toDirectory.ModifyTime = toDirectory.ChangeTime = now;
        return 0;
    }

    internal void LoadHostDirectory(FsNode directory, string hostPath, SortedDictionary<string, FsNode> children)
    {
        List<(string Name, FileSystemInfo Info)> entries = [];
        try
        {
            foreach (var info in new DirectoryInfo(hostPath).EnumerateFileSystemInfos("*", HostEnumeration))
                entries.Add((ToGuestName(info.Name), info));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.SecurityException)
        {
            // An unreadable image directory lists as empty.
        }
        entries.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        foreach (var (name, info) in entries)
        {
            if (name.Length == 0 || name.Length > MaxNameLength || name.Contains('/')) continue;
            var node = ImageNode(info);
            node.Parent = directory;
            node.Name = name;
            children[name] = node;
        }
    }

    private FsNode ImageNode(FileSystemInfo info)
    {
        uint permissions;
        try
        {
            permissions = (uint)info.UnixFileMode & 0x1FF;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            permissions = 0x1A4;
        }
        if (info.LinkTarget is { } target) return NewNode(NodeKind.Symlink, 0x1FF, target: ToGuestName(target));
        if (info is DirectoryInfo)
        {
            var directory = NewNode(NodeKind.Directory, permissions);
            directory.SetHostDirectory(info.FullName);
            return directory;
        }
        long length = info is FileInfo file ? SafeLength(file) : 0;
        return NewNode(NodeKind.Regular, permissions, data: FileData.FromHost(info.FullName, length));
    }

    private static long SafeLength(FileInfo file)
    {
        try
        {
            return file.Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    private FsNode NewNode(NodeKind kind, uint permissions, long now = 0, FileData? data = null, string? target = null,
        DeviceKind device = DeviceKind.None, ulong deviceNumber = 0, ProcKind proc = ProcKind.None, int fd = -1)
    {
        var node = new FsNode(kind, _nextInode++, permissions)
        {
            Data = data,
            SymlinkTarget = target,
            Device = device,
            DeviceNumber = deviceNumber,
            Proc = proc,
            FdNumber = fd,
        };
        node.AccessTime = node.ModifyTime = node.ChangeTime = now;
        return node;
    }

    private FsNode FdLink(FsNode directory, int fd)
    {
        if (!_fdLinks.TryGetValue(fd, out var node))
        {
            node = NewNode(NodeKind.Symlink, 0x1C0, proc: ProcKind.FdLink, fd: fd);
            node.Parent = directory;
            node.Name = fd.ToString(System.Globalization.CultureInfo.InvariantCulture);
            _fdLinks[fd] = node;
        }
        return node;
    }

    private int AttachNew(FsNode directory, string name, FsNode node, long now)
    {
        if (!directory.IsDirectory) return -Errno.ENOTDIR;
        if (name is "." or ".." || name.Length == 0) return -Errno.EEXIST;
        if (name.Length > MaxNameLength) return -Errno.ENAMETOOLONG;
        if (!IsMutableDirectory(directory)) return directory.Unlinked ? -Errno.ENOENT : -Errno.EACCES;
        var children = directory.Children(this);
        if (children.ContainsKey(name)) return -Errno.EEXIST;
        Attach(directory, name, node);
        directory.ModifyTime = directory.ChangeTime = now;
        return 0;
    }

    private void Attach(FsNode directory, string name, FsNode node)
    {
        directory.Children(this)[name] = node;
        node.Parent = directory;
        node.Name = name;
        node.Unlinked = false;
    }

    private void Detach(FsNode directory, string name, FsNode node, long now)
    {
        directory.Children(this).Remove(name);
        directory.ModifyTime = directory.ChangeTime = now;
        node.ChangeTime = now;
        if (node.IsDirectory)
        {
            node.Unlinked = true;
            return;
        }
        node.LinkCount--;
        if (node.LinkCount <= 0)
        {
            node.LinkCount = 0;
            node.Unlinked = true;
        }
        else if (node.Parent == directory && node.Name == name)
        {
            // Another name survives; readlink of /proc/self/fd keeps showing a valid path when it can.
            foreach (var (otherName, other) in directory.Children(this))
            {
                if (other == node)
                {
                    node.Name = otherName;
                    break;
                }
            }
        }
    }

    /// <summary>The directory that will hold the last component of an absolute path, created (with parents) as needed.</summary>
    private (FsNode Directory, string Name) EnsureParent(string absolutePath)
    {
        var parts = absolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException($"'{absolutePath}' names no file", nameof(absolutePath));
        var directory = Root;
        foreach (string part in parts.AsSpan(0, parts.Length - 1)) directory = EnsureDirectory(directory, part);
        return (directory, parts[^1]);
    }

    private FsNode EnsureDirectory(FsNode parent, string name)
    {
        if (parent.Children(this).TryGetValue(name, out var existing) && existing.IsDirectory) return existing;
        var directory = NewNode(NodeKind.Directory, 0x1ED);
        Attach(parent, name, directory);
        return directory;
    }

    private void BuildSyntheticTree()
    {
        var dev = EnsureDirectory(Root, "dev");
        AddDevice(dev, "null", DeviceKind.Null, 0x103);
        AddDevice(dev, "zero", DeviceKind.Zero, 0x105);
        AddDevice(dev, "random", DeviceKind.Random, 0x108);
        AddDevice(dev, "urandom", DeviceKind.URandom, 0x109);
        Attach(dev, "stdin", NewNode(NodeKind.Symlink, 0x1FF, target: "/proc/self/fd/0"));
        Attach(dev, "stdout", NewNode(NodeKind.Symlink, 0x1FF, target: "/proc/self/fd/1"));
        Attach(dev, "stderr", NewNode(NodeKind.Symlink, 0x1FF, target: "/proc/self/fd/2"));
        Attach(dev, "fd", NewNode(NodeKind.Symlink, 0x1FF, target: "/proc/self/fd"));
        var self = EnsureDirectory(EnsureDirectory(Root, "proc"), "self");
        Attach(self, "exe", NewNode(NodeKind.Symlink, 0x1FF, proc: ProcKind.SelfExe));
        var fdDirectory = NewNode(NodeKind.Directory, 0x140, proc: ProcKind.FdDirectory);
        Attach(self, "fd", fdDirectory);
        var tmp = EnsureDirectory(Root, "tmp");
        tmp.Permissions = 0x3FF; // 01777
    }

    private void AddDevice(FsNode dev, string name, DeviceKind kind, ulong number) =>
        Attach(dev, name, NewNode(NodeKind.CharDevice, 0x1B6, device: kind, deviceNumber: number));
}
