using P2PReplay.Cluster.Images;

namespace P2PReplay.Cluster;

internal sealed partial class ClusterNode
{
    private readonly Lock imageStoreGate = new();
    private ImageStore? imageStore;
    private ImageService? images;

    /// <summary>This daemon's image store, under &lt;data_dir&gt;/images (opened on first use).</summary>
    private ImageStore ImageStore()
    {
        lock (imageStoreGate) return imageStore ??= new ImageStore(Path.Combine(config.DataDir, "images"));
    }

    public (string Hash, string Root) ImportImage(string directory)
    {
        var store = ImageStore();
        try
        {
            string hash = store.Import(directory);
            ImageLog.Imported(logger, hash, directory);
            return (hash, store.Find(hash) ?? throw new ClusterException($"the image {hash} vanished from the store right after its import", 500));
        }
        catch (ImageException e)
        {
            throw new ClusterException($"--image {directory}: {e.Message}", 400);
        }
    }
}
