namespace P2PReplay.Cluster;

/// <summary>
/// The peer addresses this node has seen, kept in the data dir (one host:port per line) so a restarted node finds
/// its cluster again without seeds or mDNS. Written atomically (temp file + rename).
/// </summary>
internal sealed class KnownPeers(string dataDir)
{
    public const string FileName = "peers";
    private const int MaxPeers = 64;
    private string Path => System.IO.Path.Combine(dataDir, FileName);
    private string[] lastSaved = [];

    public IReadOnlyList<string> Load()
    {
        try
        {
            lastSaved = File.ReadAllLines(Path).Select(l => l.Trim()).Where(l => l.Length is > 0 and <= 255).Take(MaxPeers).ToArray();
            return lastSaved;
        }
        catch (FileNotFoundException)
        {
            return [];
        }
    }

    public void Save(IEnumerable<string> addresses)
    {
        string[] sorted = addresses.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Take(MaxPeers).ToArray();
        if (sorted.SequenceEqual(lastSaved)) return;
        string temporary = Path + ".tmp";
        File.WriteAllLines(temporary, sorted);
        File.Move(temporary, Path, overwrite: true);
        lastSaved = sorted;
    }
}
