using System.Buffers.Binary;
using System.Text;

namespace P2PReplay.Transport;

/// <summary>
/// Handshake message bodies. On the wire each is [u16 big-endian length][body]; body[0] is the type.
/// Hello   (1): version u8, timestamp i64 (Unix ms), nonce[16], ephemeral X25519[32], identity Ed25519[32],
///              listen address (u8 length + UTF-8 "host:port", may be empty), MAC[32] over all preceding bytes.
/// Reply   (2): ephemeral[32], identity[32], signature[64], MAC[32].
/// Finish  (3): signature[64], MAC[32].
/// Refusal (0xFF): reason u8, supported version u8 (unauthenticated; it only explains a close).
/// </summary>
internal static class HandshakeMessages
{
    public const byte ProtocolVersion = 1;
    public const int MaxMessageLength = 1024;
    public const int NonceLength = 16;
    public const int KeyLength = 32;
    public const int MacLength = 32;
    public const byte HelloType = 1;
    public const byte ReplyType = 2;
    public const byte FinishType = 3;
    public const byte RefusalType = 0xFF;

    private const int HelloFixedLength = 1 + 1 + 8 + NonceLength + KeyLength + KeyLength + 1 + MacLength;
    public const int ReplyLength = 1 + KeyLength + KeyLength + NodeIdentity.SignatureLength + MacLength;
    public const int FinishLength = 1 + NodeIdentity.SignatureLength + MacLength;

    internal sealed record Hello(byte Version, long TimestampMs, byte[] Nonce, byte[] Ephemeral, byte[] Identity, string ListenAddress, byte[] Mac)
    {
        /// <summary>Length of the body covered by the MAC.</summary>
        public int MacedLength => HelloFixedLength - MacLength + Encoding.UTF8.GetByteCount(ListenAddress);
    }

    internal sealed record Reply(byte[] Ephemeral, byte[] Identity, byte[] Signature, byte[] Mac);

    internal sealed record Finish(byte[] Signature, byte[] Mac);

    /// <summary>Encodes Hello without its MAC (the caller appends it).</summary>
    public static byte[] EncodeHelloUnmaced(long timestampMs, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ephemeral, ReadOnlySpan<byte> identity, string listenAddress, byte version = ProtocolVersion)
    {
        byte[] address = Encoding.UTF8.GetBytes(listenAddress);
        if (address.Length > PeerAddress.MaxLength) throw new ArgumentException("Listen address is too long.", nameof(listenAddress));
        byte[] body = new byte[HelloFixedLength - MacLength + address.Length];
        var span = body.AsSpan();
        span[0] = HelloType;
        span[1] = version;
        BinaryPrimitives.WriteInt64BigEndian(span[2..], timestampMs);
        nonce.CopyTo(span[10..]);
        ephemeral.CopyTo(span[(10 + NonceLength)..]);
        identity.CopyTo(span[(10 + NonceLength + KeyLength)..]);
        span[10 + NonceLength + KeyLength + KeyLength] = (byte)address.Length;
        address.CopyTo(span[(HelloFixedLength - MacLength)..]);
        return body;
    }

    /// <summary>Parses Hello; throws HandshakeException (Malformed or VersionMismatch) on anything unexpected.</summary>
    public static Hello ParseHello(ReadOnlySpan<byte> body)
    {
        if (body.Length >= 1 && body[0] == RefusalType) throw Malformed("expected a hello, got a refusal");
        if (body.Length < 2 || body[0] != HelloType) throw Malformed("first message is not a hello");
        if (body[1] != ProtocolVersion) throw new HandshakeException(HandshakeFailure.VersionMismatch, $"peer speaks protocol version {body[1]}, this node speaks {ProtocolVersion}");
        if (body.Length < HelloFixedLength) throw Malformed("hello is truncated");
        int addressLength = body[10 + NonceLength + KeyLength + KeyLength];
        if (body.Length != HelloFixedLength + addressLength) throw Malformed("hello length does not match its address length");
        string address;
        try
        {
            address = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(body.Slice(HelloFixedLength - MacLength, addressLength));
        }
        catch (ArgumentException)
        {
            throw Malformed("hello listen address is not UTF-8");
        }

        if (address.Length > 0 && !PeerAddress.TryParse(address, out _, out _)) throw Malformed("hello listen address is not host:port");
        return new Hello(
            body[1],
            BinaryPrimitives.ReadInt64BigEndian(body[2..]),
            body.Slice(10, NonceLength).ToArray(),
            body.Slice(10 + NonceLength, KeyLength).ToArray(),
            body.Slice(10 + NonceLength + KeyLength, KeyLength).ToArray(),
            address,
            body[^MacLength..].ToArray());
    }

    public static Reply ParseReply(ReadOnlySpan<byte> body)
    {
        ThrowIfRefusal(body);
        if (body.Length != ReplyLength || body[0] != ReplyType) throw Malformed("reply has the wrong type or length");
        return new Reply(
            body.Slice(1, KeyLength).ToArray(),
            body.Slice(1 + KeyLength, KeyLength).ToArray(),
            body.Slice(1 + KeyLength + KeyLength, NodeIdentity.SignatureLength).ToArray(),
            body[^MacLength..].ToArray());
    }

    public static Finish ParseFinish(ReadOnlySpan<byte> body)
    {
        ThrowIfRefusal(body);
        if (body.Length != FinishLength || body[0] != FinishType) throw Malformed("finish has the wrong type or length");
        return new Finish(body.Slice(1, NodeIdentity.SignatureLength).ToArray(), body[^MacLength..].ToArray());
    }

    public static byte[] EncodeRefusal(HandshakeFailure reason) => [RefusalType, (byte)reason, ProtocolVersion];

    private static void ThrowIfRefusal(ReadOnlySpan<byte> body)
    {
        if (body.Length == 3 && body[0] == RefusalType)
        {
            var reason = (HandshakeFailure)body[1];
            if (!Enum.IsDefined(reason)) reason = HandshakeFailure.Malformed;
            throw new HandshakeException(reason, $"peer refused the handshake: {reason} (peer speaks protocol version {body[2]})", refusedByPeer: true);
        }
    }

    private static HandshakeException Malformed(string detail) => new(HandshakeFailure.Malformed, detail);
}
