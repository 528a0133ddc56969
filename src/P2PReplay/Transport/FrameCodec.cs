using System.Buffers.Binary;
using NSec.Cryptography;
using ZstdSharp;

namespace P2PReplay.Transport;

/// <summary>
/// Frame encryption for one direction: wire = [u32 big-endian length][ChaCha20-Poly1305(plaintext) + 16-byte tag],
/// the length header is the associated data, the 12-byte nonce is 4 zero bytes + the u64 big-endian sequence number
/// (0, 1, 2 … per direction), so any replayed, reordered, dropped or duplicated frame fails authentication.
/// Plaintext = [kind u8][flags u8][payload]; flag bit 0 = payload is a zstd frame with its content size.
/// No rekeying: 2^64 frames per session cannot be exhausted; sessions end with the TCP connection.
/// Not thread-safe; SecureConnection serializes senders.
/// </summary>
internal sealed class FrameCodec : IDisposable
{
    public const int HeaderLength = 4;
    public const int TagLength = 16;
    public const int PlaintextHeaderLength = 2;
    private const int CompressionLevel = 1;

    private static readonly AeadAlgorithm Aead = AeadAlgorithm.ChaCha20Poly1305;
    private readonly Key _key;
    private readonly int _maxFrameSize;
    private readonly int _maxDecompressedSize;
    private Compressor? _compressor;
    private Decompressor? _decompressor;
    private ulong _sequence;

    public FrameCodec(ReadOnlySpan<byte> key, int maxFrameSize, int maxDecompressedSize)
    {
        _key = Key.Import(Aead, key, KeyBlobFormat.RawSymmetricKey);
        _maxFrameSize = maxFrameSize;
        _maxDecompressedSize = maxDecompressedSize;
    }

    /// <summary>Builds the next wire frame (header + ciphertext).</summary>
    public byte[] Seal(ChannelKind kind, ReadOnlySpan<byte> payload, bool compress)
    {
        byte[]? compressed = null;
        if (compress)
        {
            _compressor ??= new Compressor(CompressionLevel);
            compressed = _compressor.Wrap(payload).ToArray();
            if (compressed.Length >= payload.Length) compressed = null; // incompressible: send as is
        }

        ReadOnlySpan<byte> body = compressed ?? payload;
        long cipherLength = (long)PlaintextHeaderLength + body.Length + TagLength;
        if (cipherLength > _maxFrameSize) throw new ArgumentException($"Frame of {cipherLength} bytes exceeds the {_maxFrameSize}-byte limit.", nameof(payload));
        byte[] plaintext = new byte[PlaintextHeaderLength + body.Length];
        plaintext[0] = (byte)kind;
        plaintext[1] = (byte)(compressed is null ? FrameFlags.None : FrameFlags.Compressed);
        body.CopyTo(plaintext.AsSpan(PlaintextHeaderLength));

        byte[] wire = new byte[HeaderLength + cipherLength];
        BinaryPrimitives.WriteUInt32BigEndian(wire, (uint)cipherLength);
        Span<byte> nonce = stackalloc byte[12];
        NextNonce(nonce);
        Aead.Encrypt(_key, nonce, wire.AsSpan(0, HeaderLength), plaintext, wire.AsSpan(HeaderLength));
        return wire;
    }

    /// <summary>Checks a length header before anything is allocated for the frame.</summary>
    public int ValidateLength(ReadOnlySpan<byte> header)
    {
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (length > (uint)_maxFrameSize) throw new FrameException(FrameFailure.Oversized, $"frame length {length} exceeds the {_maxFrameSize}-byte limit");
        if (length < PlaintextHeaderLength + TagLength) throw new FrameException(FrameFailure.Malformed, $"frame length {length} is too short");
        return (int)length;
    }

    /// <summary>Decrypts and decodes one frame; header is the 4-byte length, ciphertext the rest.</summary>
    public TransportFrame Open(ReadOnlySpan<byte> header, ReadOnlySpan<byte> ciphertext)
    {
        byte[] plaintext = new byte[ciphertext.Length - TagLength];
        Span<byte> nonce = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], _sequence);
        if (!Aead.Decrypt(_key, nonce, header, ciphertext, plaintext))
        {
            throw new FrameException(FrameFailure.AuthenticationFailed, $"frame {_sequence} failed authentication (tampered, replayed, reordered or dropped frame)");
        }

        _sequence++;
        var flags = (FrameFlags)plaintext[1];
        if ((flags & ~FrameFlags.Compressed) != 0) throw new FrameException(FrameFailure.UnknownFlags, $"frame has unknown flags 0x{(byte)flags:x2}");
        var kind = (ChannelKind)plaintext[0];
        if ((flags & FrameFlags.Compressed) == 0) return new TransportFrame(kind, plaintext.AsMemory(PlaintextHeaderLength));
        return new TransportFrame(kind, Decompress(plaintext.AsSpan(PlaintextHeaderLength)));
    }

    private byte[] Decompress(ReadOnlySpan<byte> compressed)
    {
        ulong declared;
        try
        {
            declared = Decompressor.GetDecompressedSize(compressed);
        }
        catch (ZstdException e)
        {
            throw new FrameException(FrameFailure.DecompressionFailed, $"compressed payload has no readable size: {e.Message}");
        }

        if (declared >= ulong.MaxValue - 1) throw new FrameException(FrameFailure.DecompressionFailed, "compressed payload does not declare its size");

        // The declared size bounds the buffer; a frame that expands beyond it fails in TryUnwrap below.
        if (declared > (ulong)_maxDecompressedSize) throw new FrameException(FrameFailure.DecompressionLimit, $"compressed payload declares {declared} bytes, limit is {_maxDecompressedSize}");
        byte[] output = new byte[declared];
        try
        {
            _decompressor ??= new Decompressor();
            if (!_decompressor.TryUnwrap(compressed, output, out int written) || written != output.Length)
            {
                throw new FrameException(FrameFailure.DecompressionFailed, "compressed payload does not match its declared size");
            }
        }
        catch (ZstdException e)
        {
            throw new FrameException(FrameFailure.DecompressionFailed, $"compressed payload is corrupt: {e.Message}");
        }

        return output;
    }

    private void NextNonce(Span<byte> nonce)
    {
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], _sequence++);
    }

    public void Dispose()
    {
        _key.Dispose();
        _compressor?.Dispose();
        _decompressor?.Dispose();
    }
}
