using System.Security.Cryptography;
using System.Text;

namespace P2PReplay.Replay;

/// <summary>
/// Content hash of a VM image directory: every entry's relative path, type, permission bits and content (or link
/// target), in ordinal order. Timestamps and owners are not part of it: the VM never shows them.
/// </summary>
public static class ImageHash
{
    public const string Empty = "empty";

    public static string Compute(string? root)
    {
        if (root is null) return Empty;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Walk(hash, new DirectoryInfo(root), "");
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public static string Of(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    private static void Walk(IncrementalHash hash, DirectoryInfo directory, string relative)
    {
        var entries = directory.GetFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            string path = relative + "/" + entry.Name;
            string line;
            if (entry.LinkTarget is { } target)
            {
                line = $"L {path} -> {target}";
            }
            else if (entry is DirectoryInfo sub)
            {
                line = $"D {path} {Convert.ToString((int)sub.UnixFileMode, 8)}";
            }
            else if (entry is FileInfo file)
            {
                using var stream = file.OpenRead();
                line = $"F {path} {Convert.ToString((int)file.UnixFileMode, 8)} {file.Length} {Convert.ToHexStringLower(SHA256.HashData(stream))}";
            }
            else
            {
                line = $"? {path}";
            }
            hash.AppendData(Encoding.UTF8.GetBytes(line + "\n"));
            if (entry is DirectoryInfo dir && entry.LinkTarget is null) Walk(hash, dir, path);
        }
    }
}
