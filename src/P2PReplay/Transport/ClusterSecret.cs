using System.Security.Cryptography;

namespace P2PReplay.Transport;

/// <summary>
/// The 32-byte secret every member holds; peers without it cannot complete a handshake.
/// Stored as dataDir/cluster.secret (raw bytes, mode 0600).
/// </summary>
internal sealed class ClusterSecret
{
    public const string FileName = "cluster.secret";
    public const int Length = 32;

    private readonly byte[] _bytes;

    private ClusterSecret(byte[] bytes) => _bytes = bytes;

    public ReadOnlySpan<byte> Bytes => _bytes;

    public static ClusterSecret Create(ISecureRandom? random = null)
    {
        byte[] bytes = new byte[Length];
        (random ?? SystemSecureRandom.Instance).Fill(bytes);
        return new ClusterSecret(bytes);
    }

    public static ClusterSecret FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length) throw new ArgumentException($"A cluster secret is {Length} bytes.", nameof(bytes));
        return new ClusterSecret(bytes.ToArray());
    }

    /// <summary>Loads dataDir/cluster.secret; null when this node has not joined a cluster yet.</summary>
    public static ClusterSecret? Load(string dataDir)
    {
        byte[]? bytes = SecretFile.ReadIfExists(Path.Combine(dataDir, FileName), Length);
        return bytes is null ? null : new ClusterSecret(bytes);
    }

    /// <summary>Writes dataDir/cluster.secret atomically with mode 0600, replacing any previous secret.</summary>
    public void Save(string dataDir) => SecretFile.TryCreate(Path.Combine(dataDir, FileName), _bytes, overwrite: true);

    public bool SameAs(ClusterSecret other) => CryptographicOperations.FixedTimeEquals(_bytes, other._bytes);
}
