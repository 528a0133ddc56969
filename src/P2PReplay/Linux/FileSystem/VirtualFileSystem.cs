namespace P2PReplay.Linux.FileSystem;

// PLACEHOLDER: the file-system helper replaces this file.
/// <summary>The guest's file tree: a read-only image plus a writable in-VM layer.</summary>
public sealed class VirtualFileSystem
{
    /// <param name="imageRoot">host directory that is the read-only VM image, or null for an empty root</param>
    /// <param name="extraFiles">files placed into the image at absolute guest paths (the program when the image lacks it)</param>
    public VirtualFileSystem(string? imageRoot, IReadOnlyDictionary<string, byte[]> extraFiles)
    {
        ImageRoot = imageRoot;
        ExtraFiles = extraFiles;
    }

    public string? ImageRoot { get; }

    public IReadOnlyDictionary<string, byte[]> ExtraFiles { get; }
}
