using System.Buffers.Binary;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace P2PReplay.Transport;

/// <summary>
/// A node's long-term Ed25519 identity. NodeId is the first 8 bytes of SHA-256(public key) as 16 lowercase
/// hex characters; NumericId is the same 8 bytes big-endian (Raft wants ulong ids).
/// </summary>
internal sealed class NodeIdentity : IDisposable
{
    public const string FileName = "node.key";
    public const int PublicKeyLength = 32;
    public const int SignatureLength = 64;
    private const int SeedLength = 32;

    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;
    private readonly Key _key;

    private NodeIdentity(Key key)
    {
        _key = key;
        PublicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        NodeId = NodeIdOf(PublicKey);
        NumericId = NumericIdOf(PublicKey);
    }

    public byte[] PublicKey { get; }

    public string NodeId { get; }

    public ulong NumericId { get; }

    /// <summary>Creates an identity from a 32-byte Ed25519 seed (the content of node.key).</summary>
    public static NodeIdentity FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != SeedLength) throw new ArgumentException($"An Ed25519 seed is {SeedLength} bytes.", nameof(seed));
        var key = Key.Import(Algorithm, seed, KeyBlobFormat.RawPrivateKey, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return new NodeIdentity(key);
    }

    public static NodeIdentity Create(ISecureRandom? random = null)
    {
        Span<byte> seed = stackalloc byte[SeedLength];
        try
        {
            (random ?? SystemSecureRandom.Instance).Fill(seed);
            return FromSeed(seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>Loads dataDir/node.key, creating it (mode 0600, atomically) on first use.</summary>
    public static NodeIdentity LoadOrCreate(string dataDir, ISecureRandom? random = null)
    {
        string path = Path.Combine(dataDir, FileName);
        byte[]? seed = SecretFile.ReadIfExists(path, SeedLength);
        if (seed is null)
        {
            seed = new byte[SeedLength];
            (random ?? SystemSecureRandom.Instance).Fill(seed);
            if (!SecretFile.TryCreate(path, seed))
            {
                // Another process created it first: use theirs so both agree.
                seed = SecretFile.ReadIfExists(path, SeedLength) ?? throw new SecretFileException($"{path} vanished while being created.");
            }
        }

        try
        {
            return FromSeed(seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    public static string NodeIdOf(ReadOnlySpan<byte> publicKey)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(publicKey, hash);
        return Convert.ToHexStringLower(hash[..8]);
    }

    public static ulong NumericIdOf(ReadOnlySpan<byte> publicKey)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(publicKey, hash);
        return BinaryPrimitives.ReadUInt64BigEndian(hash);
    }

    public byte[] Sign(ReadOnlySpan<byte> data) => Algorithm.Sign(_key, data);

    public void Sign(ReadOnlySpan<byte> data, Span<byte> signature) => Algorithm.Sign(_key, data, signature);

    /// <summary>Verifies an Ed25519 signature; false (never an exception) for malformed keys or signatures.</summary>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != PublicKeyLength || signature.Length != SignatureLength) return false;
        if (!NSec.Cryptography.PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out NSec.Cryptography.PublicKey? key) || key is null) return false;
        return Algorithm.Verify(key, data, signature);
    }

    public void Dispose() => _key.Dispose();
}
