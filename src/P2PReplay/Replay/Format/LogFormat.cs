using System.Buffers.Binary;
using System.IO.Hashing;

namespace P2PReplay.Replay.Format;

/// <summary>
/// Layout of the log container (DESIGN.md §2): an 8-byte stream header ("P2PRLOG" + version), then chunks.
/// Chunk header, 32 bytes, little-endian:
///   0 magic "CHNK" | 4 sequence u32 | 8 flags u8 | 9 reserved[3] = 0 | 12 uncompressed length u32 |
///   16 stored length u32 | 20 checksum u64 = XxHash64(bytes 0..20 + stored payload) | 28 header check u32 = XxHash32(bytes 0..28).
/// The header check lets a reader trust the lengths before it waits for (or allocates) the payload, so a flipped
/// length is reported as corruption rather than as a truncated or still-growing stream.
/// Payload (after decompression): records of kind u8 (0 invalid), LEB128 u32 length, bytes.
/// </summary>
internal static class LogFormat
{
    public const byte Version = 1;
    public const int StreamHeaderSize = 8;
    public const int ChunkHeaderSize = 32;

    /// <summary>Cap on both lengths of a chunk: a corrupt length must not make a reader allocate gigabytes.</summary>
    public const int MaxChunkBytes = 4 * 1024 * 1024;

    /// <summary>Largest record payload: it must fit a chunk with its kind byte and a 5-byte length.</summary>
    public const int MaxRecordPayload = MaxChunkBytes - 1 - 5;

    public const byte FlagCompressed = 1 << 0;
    public const byte FlagFinal = 1 << 1;
    public const byte KnownFlags = FlagCompressed | FlagFinal;

    public static ReadOnlySpan<byte> StreamMagic => "P2PRLOG"u8;
    public static ReadOnlySpan<byte> ChunkMagic => "CHNK"u8;

    public static void WriteStreamHeader(Span<byte> destination)
    {
        StreamMagic.CopyTo(destination);
        destination[7] = Version;
    }

    /// <summary>Fills a chunk header for the given stored payload (checksum and header check included).</summary>
    public static void WriteChunkHeader(Span<byte> header, uint sequence, byte flags, int uncompressedLength, ReadOnlySpan<byte> stored)
    {
        ChunkMagic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], sequence);
        header[8] = flags;
        header[9] = header[10] = header[11] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], (uint)uncompressedLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], (uint)stored.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(header[20..], Checksum(header[..20], stored));
        BinaryPrimitives.WriteUInt32LittleEndian(header[28..], XxHash32.HashToUInt32(header[..28]));
    }

    public static ulong Checksum(ReadOnlySpan<byte> headerFields, ReadOnlySpan<byte> stored)
    {
        var hash = new XxHash64();
        hash.Append(headerFields);
        hash.Append(stored);
        return hash.GetCurrentHashAsUInt64();
    }

    public static int VarintSize(uint value)
    {
        int size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }
        return size;
    }

    public static int WriteVarint(Span<byte> destination, uint value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }
        destination[i++] = (byte)value;
        return i;
    }

    /// <summary>Reads a LEB128 u32; returns the bytes consumed, or 0 if it runs off the span or overflows 32 bits.</summary>
    public static int ReadVarint(ReadOnlySpan<byte> source, out uint value)
    {
        value = 0;
        for (int i = 0; i < 5 && i < source.Length; i++)
        {
            byte b = source[i];
            if (i == 4 && b > 0x0f) return 0;
            value |= (uint)(b & 0x7f) << (7 * i);
            if (b < 0x80) return i + 1;
        }
        return 0;
    }
}
