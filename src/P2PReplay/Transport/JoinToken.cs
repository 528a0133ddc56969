using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace P2PReplay.Transport;

/// <summary>
/// What a new node needs to join: the cluster secret and a few seed addresses.
/// Text form: "p2p1." + base64url(version u8 | secret[32] | count u8 | count × (len u8 | utf8 "host:port") | SHA-256(previous)[0..4]).
/// The checksum catches copy/paste damage; the token is as sensitive as the secret itself.
/// </summary>
internal sealed class JoinToken
{
    public const string Prefix = "p2p1.";
    public const byte Version = 1;
    public const int MaxSeeds = 32;
    private const int ChecksumLength = 4;

    public JoinToken(ClusterSecret secret, IReadOnlyList<string> seeds)
    {
        ArgumentNullException.ThrowIfNull(seeds);
        if (seeds.Count > MaxSeeds) throw new ArgumentException($"At most {MaxSeeds} seed addresses fit in a join token.", nameof(seeds));
        foreach (string seed in seeds)
        {
            if (!PeerAddress.TryParse(seed, out _, out _)) throw new ArgumentException($"Seed address '{seed}' is not host:port.", nameof(seeds));
        }

        Secret = secret;
        Seeds = [.. seeds];
    }

    public ClusterSecret Secret { get; }

    public IReadOnlyList<string> Seeds { get; }

    /// <summary>
    /// Same as Encode(); kept because Cluster/ClusterNode prints tokens with ToString(). Prefer Encode(): the token
    /// carries the secret, and once callers use Encode() this should return a redacted form so it cannot leak into logs.
    /// </summary>
    public override string ToString() => Encode();

    /// <summary>The text form ("p2p1.…"); it carries the cluster secret.</summary>
    public string Encode()
    {
        using var body = new MemoryStream();
        body.WriteByte(Version);
        body.Write(Secret.Bytes);
        body.WriteByte((byte)Seeds.Count);
        foreach (string seed in Seeds)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(seed);
            body.WriteByte((byte)utf8.Length);
            body.Write(utf8);
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(body.GetBuffer().AsSpan(0, (int)body.Length), hash);
        body.Write(hash[..ChecksumLength]);
        return Prefix + Base64Url.EncodeToString(body.GetBuffer().AsSpan(0, (int)body.Length));
    }

    /// <summary>Parses a token; any damage gives a FormatException saying what is wrong.</summary>
    public static JoinToken Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = text.Trim();
        if (!text.StartsWith(Prefix, StringComparison.Ordinal)) throw new FormatException($"Join token must start with '{Prefix}'.");
        string encoded = text[Prefix.Length..];
        if (encoded.Length > 16 * 1024) throw new FormatException("Join token is too long.");
        byte[] data;
        try
        {
            data = Base64Url.DecodeFromChars(encoded);
        }
        catch (FormatException)
        {
            throw new FormatException("Join token is not valid base64url (damaged when copied?).");
        }

        if (data.Length < 1 + ClusterSecret.Length + 1 + ChecksumLength) throw new FormatException("Join token is truncated.");
        ReadOnlySpan<byte> body = data.AsSpan(0, data.Length - ChecksumLength);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(body, hash);
        if (!hash[..ChecksumLength].SequenceEqual(data.AsSpan(data.Length - ChecksumLength))) throw new FormatException("Join token checksum does not match (truncated or damaged when copied?).");
        if (body[0] != Version) throw new FormatException($"Join token version {body[0]} is not supported (expected {Version}).");
        var secret = ClusterSecret.FromBytes(body.Slice(1, ClusterSecret.Length));
        int offset = 1 + ClusterSecret.Length;
        int count = body[offset++];
        if (count > MaxSeeds) throw new FormatException($"Join token lists {count} seeds; at most {MaxSeeds} are allowed.");
        var seeds = new List<string>(count);
        for (int i = 0; i < count; i++)
        {
            if (offset >= body.Length) throw new FormatException("Join token is truncated in its seed list.");
            int length = body[offset++];
            if (offset + length > body.Length) throw new FormatException("Join token is truncated in its seed list.");
            string seed;
            try
            {
                seed = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(body.Slice(offset, length));
            }
            catch (ArgumentException)
            {
                throw new FormatException("Join token seed address is not UTF-8.");
            }

            if (!PeerAddress.TryParse(seed, out _, out _)) throw new FormatException($"Join token seed address '{seed}' is not host:port.");
            seeds.Add(seed);
            offset += length;
        }

        if (offset != body.Length) throw new FormatException("Join token has trailing bytes.");
        return new JoinToken(secret, seeds);
    }
}
