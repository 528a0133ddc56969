using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.FileSystem;

public enum NodeKind : byte
{
    Directory,
    Regular,
    Symlink,
    CharDevice,
}

/// <summary>What a character device node does when it is read or written.</summary>
public enum DeviceKind : byte
{
    None,
    Null,
    Zero,
    Random,
    URandom,
}

/// <summary>Which dynamic /proc entry a node is.</summary>
public enum ProcKind : byte
{
    None,
    /// <summary>/proc/self/exe: a symlink whose target is the running program.</summary>
    SelfExe,
    /// <summary>/proc/self/fd: a directory listing the open descriptors.</summary>
    FdDirectory,
    /// <summary>/proc/self/fd/N: a "magic" link to an open description.</summary>
    FdLink,
}

/// <summary>
/// One inode of the guest's tree. Names are byte strings held as Latin-1 strings (one char per byte), so ordinal
/// order is byte order and any name round-trips exactly. Image directories load their host listing on first use;
/// from then on the node tree is the merged view (a deleted image entry is simply absent: the whiteout).
/// </summary>
public sealed class FsNode
{
    private SortedDictionary<string, FsNode>? _children;
    private string? _hostDirectory;

    internal FsNode(NodeKind kind, ulong inode, uint permissions)
    {
        Kind = kind;
        Inode = inode;
        Permissions = permissions & FileModes.PermissionMask;
    }

    public NodeKind Kind { get; }

    public ulong Inode { get; }

    public uint Permissions { get; set; }

    public uint Uid { get; set; } = LinuxProcess.UserId;

    public uint Gid { get; set; } = LinuxProcess.GroupId;

    public long AccessTime { get; set; }

    public long ModifyTime { get; set; }

    public long ChangeTime { get; set; }

    /// <summary>Hard links to a non-directory (directories compute theirs).</summary>
    public int LinkCount { get; set; } = 1;

    /// <summary>The directory that holds the node's (last) name; the root is its own parent.</summary>
    public FsNode? Parent { get; internal set; }

    public string Name { get; internal set; } = "";

    /// <summary>True once the node's last name is gone (open descriptors keep it alive).</summary>
    public bool Unlinked { get; internal set; }

    public FileData? Data { get; internal init; }

    public string? SymlinkTarget { get; internal init; }

    public DeviceKind Device { get; internal init; }

    public ulong DeviceNumber { get; internal init; }

    public ProcKind Proc { get; internal init; }

    /// <summary>For /proc/self/fd/N: N.</summary>
    public int FdNumber { get; internal init; } = -1;

    public bool IsDirectory => Kind == NodeKind.Directory;

    public uint Mode => Permissions | Kind switch
    {
        NodeKind.Directory => FileModes.Directory,
        NodeKind.Regular => FileModes.Regular,
        NodeKind.Symlink => FileModes.Symlink,
        _ => FileModes.CharDevice,
    };

    public byte DirentType => Kind switch
    {
        NodeKind.Directory => DirentTypes.Directory,
        NodeKind.Regular => DirentTypes.Regular,
        NodeKind.Symlink => DirentTypes.Symlink,
        _ => DirentTypes.CharDevice,
    };

    internal bool HasHostListing => _hostDirectory is not null;

    /// <summary>Snapshots: the host directory still to be listed (null once listed or for layer directories).</summary>
    internal string? PendingHostDirectory => _hostDirectory;

    /// <summary>Snapshots: the listed entries, or null when the directory was never listed.</summary>
    internal SortedDictionary<string, FsNode>? ListedChildren => _children;

    internal void RestoreDirectory(string? hostDirectory, SortedDictionary<string, FsNode>? children)
    {
        _hostDirectory = hostDirectory;
        _children = children;
    }

    internal void SetHostDirectory(string hostDirectory) => _hostDirectory = hostDirectory;

    /// <summary>The entries listed so far, sorted by name, without reading the host (state digests must not change state).</summary>
    internal IEnumerable<KeyValuePair<string, FsNode>> LoadedChildren => _children ?? Enumerable.Empty<KeyValuePair<string, FsNode>>();

    /// <summary>The entries of a directory, sorted by name (ordinal byte order).</summary>
    internal SortedDictionary<string, FsNode> Children(VirtualFileSystem fileSystem)
    {
        if (_children is null)
        {
            _children = new SortedDictionary<string, FsNode>(StringComparer.Ordinal);
            if (_hostDirectory is { } host) fileSystem.LoadHostDirectory(this, host, _children);
            _hostDirectory = null;
        }
        return _children;
    }
}
