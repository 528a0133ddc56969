using System.Text;
using P2PReplay.Replay;

namespace P2PReplay.Cluster.Images;

/// <summary>An image cannot be imported, received or used (bad entry, wrong hash, too big).</summary>
internal sealed class ImageException(string message) : Exception(message);

internal enum ImageEntryKind : byte
{
    Directory = 1,
    File = 2,
    Symlink = 3,
}

/// <summary>One entry of an image tree: its path relative to the image root ('/'-separated), permission bits, size
/// (files) and target (symlinks).</summary>
internal sealed record ImageEntry(string Path, ImageEntryKind Kind, int Mode, long Size, string Target = "");

/// <summary>
/// The limits and path rules every image obeys, checked on import, on the wire and while receiving: relative paths
/// of plain components (no '', '.', '..', NUL), symlinks whose target stays inside the image, permission bits only.
/// </summary>
internal static class ImageRules
{
    public const long MaxImageBytes = 4L << 30;
    public const int MaxEntries = 100_000;
    public const int MaxPathBytes = 1024;
    public const int PermissionBits = 0x1FF; // 0777: no setuid, setgid or sticky bits in an image

    /// <summary>Null when the relative path is acceptable, else why not.</summary>
    public static string? CheckPath(string path)
    {
        if (path.Length == 0) return "an empty path";
        if (Encoding.UTF8.GetByteCount(path) > MaxPathBytes) return $"a path over {MaxPathBytes} bytes";
        if (path[0] == '/') return $"an absolute path ({path})";
        if (path.Contains('\0', StringComparison.Ordinal) || path.Contains('\\', StringComparison.Ordinal)) return $"a path with NUL or '\\' ({path})";
        foreach (string part in path.Split('/'))
        {
            if (part is "" or "." or "..") return $"a path with an empty, '.' or '..' component ({path})";
        }
        return null;
    }

    /// <summary>Null when a symlink at the relative path may point at target (relative, never leaving the image).</summary>
    public static string? CheckLinkTarget(string path, string target)
    {
        if (target.Length == 0 || Encoding.UTF8.GetByteCount(target) > MaxPathBytes || target.Contains('\0', StringComparison.Ordinal)) return $"symlink {path} has an empty, NUL-containing or overlong target";
        if (target[0] == '/') return $"symlink {path} -> {target} is absolute (it would point outside the image)";
        int depth = path.Count(c => c == '/'); // the link's directory depth below the root
        foreach (string part in target.Split('/'))
        {
            if (part is "" or ".") continue;
            depth += part == ".." ? -1 : 1;
            if (depth < 0) return $"symlink {path} -> {target} leaves the image";
        }
        return null;
    }

    public static bool IsHash(string text) => text.Length == 64 && text.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>
    /// The entries of a tree in the order they are sent (ordinal per directory, each directory before its content),
    /// checked against the rules. Throws <see cref="ImageException"/> on anything an image cannot hold.
    /// </summary>
    public static List<ImageEntry> List(string root)
    {
        var entries = new List<ImageEntry>();
        long total = 0;
        void Walk(DirectoryInfo directory, string relative)
        {
            foreach (var entry in directory.GetFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                string path = relative.Length == 0 ? entry.Name : relative + "/" + entry.Name;
                if (CheckPath(path) is { } badPath) throw new ImageException($"the image holds {badPath}");
                if (entries.Count >= MaxEntries) throw new ImageException($"the image has over {MaxEntries} entries");
                int mode = (int)entry.UnixFileMode;
                if ((mode & ~PermissionBits) != 0 && entry.LinkTarget is null) throw new ImageException($"{path} has setuid, setgid or sticky bits, which an image cannot carry");
                if (entry.LinkTarget is { } target)
                {
                    if (CheckLinkTarget(path, target) is { } badLink) throw new ImageException(badLink);
                    entries.Add(new ImageEntry(path, ImageEntryKind.Symlink, 0, 0, target));
                }
                else if (entry is DirectoryInfo sub)
                {
                    entries.Add(new ImageEntry(path, ImageEntryKind.Directory, mode, 0));
                    Walk(sub, path);
                }
                else if (entry is FileInfo file && Interop.NativeLstat.FileType(file.FullName) == Interop.NativeLstat.S_IFREG)
                {
                    total += file.Length;
                    if (total > MaxImageBytes) throw new ImageException($"the image is over {MaxImageBytes >> 30} GiB");
                    entries.Add(new ImageEntry(path, ImageEntryKind.File, mode, file.Length));
                }
                else
                {
                    throw new ImageException($"{path} is not a file, directory or symlink (devices, sockets and pipes cannot be in an image)");
                }
            }
        }
        Walk(new DirectoryInfo(root), "");
        return entries;
    }
}

/// <summary>
/// This daemon's content-addressed images: <c>&lt;data_dir&gt;/images/&lt;sha256&gt;/</c>, each the root of an image tree
/// whose <see cref="ImageHash.Compute"/> is its name. Trees are built in <c>.tmp/</c> (an import's copy or a peer's
/// transfer), hashed there and renamed into place only when the hash matches, so a name never holds a partial tree.
/// The image root is made read-only (0555; the modes inside are part of the hash, so they stay as they are).
/// Trust: a tree is verified when it enters the store and again the first time this process uses it (the set of
/// verified hashes lives in memory only): a tree altered on disk while the daemon was down is caught at its next use,
/// moved aside and fetched again. While the process runs, every copy's start hashes its image once more (the log
/// header records the image hash, and a replica checks it), so an image altered under a running daemon is caught too.
/// </summary>
internal sealed class ImageStore
{
    private readonly string directory;
    private readonly string temp;
    private readonly Lock gate = new();
    private readonly HashSet<string> verified = new(StringComparer.Ordinal);
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode ReadOnly = UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    public ImageStore(string directory)
    {
        this.directory = directory;
        temp = Path.Combine(directory, ".tmp");
        Directory.CreateDirectory(directory, Private);
        // Leftovers of an interrupted import or transfer are never trusted.
        if (Directory.Exists(temp)) ForceDelete(temp);
        Directory.CreateDirectory(temp, Private);
    }

    public string Root => directory;

    public string PathOf(string hash) => Path.Combine(directory, ImageRules.IsHash(hash) ? hash : throw new ImageException($"'{hash}' is not an image hash"));

    /// <summary>The held image's root once its content verified; null when not held (a tree that does not verify is
    /// moved aside and deleted, so it can be fetched again).</summary>
    public string? Find(string hash)
    {
        if (!ImageRules.IsHash(hash)) return null;
        string path = PathOf(hash);
        bool exists = Directory.Exists(path);
        lock (gate)
        {
            if (!exists) verified.Remove(hash); // removed behind the daemon's back: fetch it again
            else if (verified.Contains(hash)) return path;
        }
        if (!exists) return null;
        string actual;
        try
        {
            actual = ImageHash.Compute(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            actual = "unreadable";
        }
        lock (gate)
        {
            if (actual == hash)
            {
                verified.Add(hash);
                return path;
            }
        }
        Discard(path);
        return null;
    }

    /// <summary>Imports a directory tree (a copy, hashed before and after); returns its hash. Throws <see cref="ImageException"/>.</summary>
    public string Import(string source)
    {
        if (!Path.IsPathFullyQualified(source)) throw new ImageException($"the image directory must be an absolute path, not {source}");
        if (!Directory.Exists(source)) throw new ImageException($"{source}: no such directory");
        List<ImageEntry> entries;
        string expected;
        try
        {
            entries = ImageRules.List(source);
            expected = ImageHash.Compute(source);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageException($"cannot read the image {source}: {e.Message}");
        }
        if (Find(expected) is not null) return expected;
        using var writer = BeginReceive(expected);
        byte[] buffer = new byte[1 << 20];
        try
        {
            foreach (var entry in entries)
            {
                writer.Add(entry);
                if (entry.Kind != ImageEntryKind.File) continue;
                using var input = new FileStream(Path.Combine(source, entry.Path), FileMode.Open, FileAccess.Read, FileShare.Read);
                int read;
                while ((read = input.Read(buffer)) > 0) writer.Write(buffer.AsSpan(0, read));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageException($"cannot copy the image {source}: {e.Message}");
        }
        writer.Complete();
        return expected;
    }

    /// <summary>Starts building the image with this hash in a fresh temporary directory.</summary>
    public ImageWriter BeginReceive(string hash)
    {
        if (!ImageRules.IsHash(hash)) throw new ImageException($"'{hash}' is not an image hash");
        string root = Path.Combine(temp, $"{hash[..16]}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root, Private);
        return new ImageWriter(this, hash, root);
    }

    /// <summary>Hashes a finished tree and renames it into place; throws if its hash is not the expected one.</summary>
    internal string Commit(string tree, string hash)
    {
        string actual = ImageHash.Compute(tree);
        if (actual != hash) throw new ImageException($"the image's content hashes to {actual}, not {hash} (changed while copied, or corrupt)");
        string final = PathOf(hash);
        File.SetUnixFileMode(tree, ReadOnly);
        for (int attempt = 0; attempt < 3; attempt++)
        {
            lock (gate)
            {
                if (!Directory.Exists(final))
                {
                    Directory.Move(tree, final);
                    verified.Add(hash);
                    return final;
                }
                if (verified.Contains(hash))
                {
                    ForceDelete(tree);
                    return final;
                }
            }
            // A tree of that name that this process has not verified yet (another import or transfer finished first,
            // or one left from before a restart): keep it if it verifies, else Find moves it aside and we retry.
            if (Find(hash) is { } held)
            {
                ForceDelete(tree);
                return held;
            }
        }
        ForceDelete(tree);
        throw new ImageException($"cannot place the image {hash} in the store");
    }

    private void Discard(string path)
    {
        string aside = Path.Combine(temp, "bad-" + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.Move(path, aside);
            ForceDelete(aside);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Deletes a tree even where its directories are read-only.</summary>
    internal static void ForceDelete(string path)
    {
        if (!Directory.Exists(path)) return;
        try
        {
            var root = new DirectoryInfo(path);
            if (root.LinkTarget is null)
            {
                root.UnixFileMode |= Private;
                foreach (var sub in root.EnumerateDirectories("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = false }))
                {
                    if (sub.LinkTarget is null) sub.UnixFileMode |= Private;
                }
            }
            Directory.Delete(path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>
/// Builds one image in a temporary directory from a stream of entries (each directory before its content) and file
/// data; every rule is checked as it arrives. <see cref="Complete"/> verifies the hash and moves it into the store;
/// disposing an uncompleted writer deletes the partial tree.
/// </summary>
internal sealed class ImageWriter : IDisposable
{
    private readonly ImageStore store;
    private readonly string hash;
    private readonly string root;
    private readonly HashSet<string> directories = new(StringComparer.Ordinal) { "" };
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private readonly List<(string Path, int Mode, bool Directory)> modes = [];
    private FileStream? current;
    private string currentPath = "";
    private long remaining;
    private long total;
    private bool done;

    internal ImageWriter(ImageStore store, string hash, string root)
    {
        this.store = store;
        this.hash = hash;
        this.root = root;
    }

    public string Hash => hash;
    public long Bytes => total;
    public int Entries => names.Count;

    public void Add(ImageEntry entry)
    {
        FinishFile();
        if (ImageRules.CheckPath(entry.Path) is { } bad) throw new ImageException($"refused {bad}");
        if (names.Count >= ImageRules.MaxEntries) throw new ImageException($"the image has over {ImageRules.MaxEntries} entries");
        int slash = entry.Path.LastIndexOf('/');
        string parent = slash < 0 ? "" : entry.Path[..slash];
        if (!directories.Contains(parent)) throw new ImageException($"{entry.Path} comes before its directory (or its parent is not a directory)");
        if (!names.Add(entry.Path)) throw new ImageException($"{entry.Path} appears twice");
        if (entry.Kind != ImageEntryKind.Symlink && (entry.Mode & ~ImageRules.PermissionBits) != 0) throw new ImageException($"{entry.Path} has mode bits beyond 0777");
        string full = Path.Combine(root, entry.Path);
        switch (entry.Kind)
        {
            case ImageEntryKind.Directory:
                Directory.CreateDirectory(full);
                directories.Add(entry.Path);
                modes.Add((full, entry.Mode, true));
                break;
            case ImageEntryKind.File:
                if (entry.Size < 0 || entry.Size > ImageRules.MaxImageBytes - total) throw new ImageException($"{entry.Path}: the image would be over {ImageRules.MaxImageBytes >> 30} GiB");
                current = new FileStream(full, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                currentPath = entry.Path;
                remaining = entry.Size;
                total += entry.Size;
                modes.Add((full, entry.Mode, false));
                break;
            case ImageEntryKind.Symlink:
                if (ImageRules.CheckLinkTarget(entry.Path, entry.Target) is { } badLink) throw new ImageException($"refused {badLink}");
                File.CreateSymbolicLink(full, entry.Target);
                break;
            default:
                throw new ImageException($"{entry.Path} has an unknown kind {(byte)entry.Kind}");
        }
    }

    /// <summary>Content of the file last added, in order.</summary>
    public void Write(ReadOnlySpan<byte> data)
    {
        if (current is null) throw new ImageException("file data without a file entry");
        if (data.Length > remaining) throw new ImageException($"{currentPath} is longer than announced");
        current.Write(data);
        remaining -= data.Length;
    }

    /// <summary>Verifies the tree's hash and moves it into the store; returns the image's root there.</summary>
    public string Complete()
    {
        FinishFile();
        foreach (var (path, mode, _) in modes.Where(m => !m.Directory)) File.SetUnixFileMode(path, (UnixFileMode)mode);
        // Deepest directories first: a directory without write permission is finished only once its content is.
        foreach (var (path, mode, _) in modes.Where(m => m.Directory).OrderByDescending(m => m.Path.Length)) File.SetUnixFileMode(path, (UnixFileMode)mode);
        string final = store.Commit(root, hash);
        done = true;
        return final;
    }

    private void FinishFile()
    {
        if (current is null) return;
        if (remaining != 0) throw new ImageException($"{currentPath} is {remaining} bytes shorter than announced");
        current.Dispose();
        current = null;
    }

    public void Dispose()
    {
        current?.Dispose();
        current = null;
        if (!done) ImageStore.ForceDelete(root);
    }
}
