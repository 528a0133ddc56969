using System.Buffers.Binary;
using System.Text;

namespace P2PReplay.Cluster.Images;

/// <summary>An Image channel message is malformed; the frame is dropped (and a transfer it belongs to fails).</summary>
internal sealed class ImageWireFormatException(string message) : Exception(message);

internal enum ImageMessageType : byte
{
    /// <summary>Fetcher to holder: send me the image with this hash.</summary>
    Request = 1,

    /// <summary>Holder to fetcher: the next entry (directories before their content); a file's data follows.</summary>
    Entry = 2,

    /// <summary>Holder to fetcher: the next bytes of the file entry last sent.</summary>
    Data = 3,

    /// <summary>Holder to fetcher: that was all (entry and byte counts, to catch a lost frame).</summary>
    End = 4,

    /// <summary>Holder to fetcher: cannot send it (not held, busy).</summary>
    Error = 5,
}

/// <summary>
/// One message of an image transfer (ChannelKind.Image), all tied to the fetcher's transfer id. Layout:
/// type u8 | transfer u64 | then per type —
/// Request: hash (64 ASCII hex);
/// Entry: kind u8 | mode u16 | size u64 | path length u16 | path | target length u16 | target;
/// Data: the bytes (at most <see cref="MaxDataBytes"/>);
/// End: entries u32 | bytes u64;
/// Error: UTF-8 text (at most 512 bytes).
/// </summary>
internal sealed record ImageMessage(ImageMessageType Type, ulong Transfer, string Hash = "", ImageEntry? Entry = null, ReadOnlyMemory<byte> Data = default, long Count = 0, long Bytes = 0, string Text = "")
{
    public const int MaxDataBytes = 256 << 10;
    public const int MaxTextBytes = 512;
    private const int HeaderLength = 9;

    public static ImageMessage Request(ulong transfer, string hash) => new(ImageMessageType.Request, transfer, Hash: hash);
    public static ImageMessage EntryOf(ulong transfer, ImageEntry entry) => new(ImageMessageType.Entry, transfer, Entry: entry);
    public static ImageMessage DataOf(ulong transfer, ReadOnlyMemory<byte> data) => new(ImageMessageType.Data, transfer, Data: data);
    public static ImageMessage EndOf(ulong transfer, long entries, long bytes) => new(ImageMessageType.End, transfer, Count: entries, Bytes: bytes);
    public static ImageMessage ErrorOf(ulong transfer, string text) => new(ImageMessageType.Error, transfer, Text: text);

    public byte[] Encode()
    {
        byte[] body = Type switch
        {
            ImageMessageType.Request => ImageRules.IsHash(Hash) ? Encoding.ASCII.GetBytes(Hash) : throw new ArgumentException("not an image hash"),
            ImageMessageType.Entry => EncodeEntry(Entry ?? throw new ArgumentException("an entry message needs an entry")),
            ImageMessageType.Data => Data.Length <= MaxDataBytes ? Data.ToArray() : throw new ArgumentException($"image data over {MaxDataBytes} bytes per message"),
            ImageMessageType.End => EncodeEnd(),
            ImageMessageType.Error => Encoding.UTF8.GetBytes(Truncate(Text)),
            _ => throw new ArgumentException($"unknown image message type {Type}"),
        };
        byte[] bytes = new byte[HeaderLength + body.Length];
        bytes[0] = (byte)Type;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(1), Transfer);
        body.CopyTo(bytes, HeaderLength);
        return bytes;
    }

    private static string Truncate(string text)
    {
        while (Encoding.UTF8.GetByteCount(text) > MaxTextBytes) text = text[..^1];
        return text;
    }

    private byte[] EncodeEnd()
    {
        byte[] body = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(body, checked((uint)Count));
        BinaryPrimitives.WriteInt64LittleEndian(body.AsSpan(4), Bytes);
        return body;
    }

    private static byte[] EncodeEntry(ImageEntry entry)
    {
        byte[] path = Encoding.UTF8.GetBytes(entry.Path);
        byte[] target = Encoding.UTF8.GetBytes(entry.Target);
        byte[] body = new byte[1 + 2 + 8 + 2 + path.Length + 2 + target.Length];
        var span = body.AsSpan();
        span[0] = (byte)entry.Kind;
        BinaryPrimitives.WriteUInt16LittleEndian(span[1..], checked((ushort)entry.Mode));
        BinaryPrimitives.WriteInt64LittleEndian(span[3..], entry.Size);
        BinaryPrimitives.WriteUInt16LittleEndian(span[11..], checked((ushort)path.Length));
        path.CopyTo(span[13..]);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(13 + path.Length)..], checked((ushort)target.Length));
        target.CopyTo(span[(15 + path.Length)..]);
        return body;
    }

    /// <summary>Decodes and checks a message: unknown types, bad lengths, bad hashes and entries that break the image
    /// rules (absolute paths, '..', escaping symlinks, oversize, mode bits beyond 0777) throw <see cref="ImageWireFormatException"/>.</summary>
    public static ImageMessage Decode(ReadOnlyMemory<byte> message)
    {
        var span = message.Span;
        if (span.Length < HeaderLength) throw new ImageWireFormatException("image message shorter than its header");
        var type = (ImageMessageType)span[0];
        ulong transfer = BinaryPrimitives.ReadUInt64LittleEndian(span[1..]);
        var body = span[HeaderLength..];
        switch (type)
        {
            case ImageMessageType.Request:
                string hash = body.Length == 64 ? Encoding.ASCII.GetString(body) : "";
                if (!ImageRules.IsHash(hash)) throw new ImageWireFormatException("an image request needs a lowercase hex SHA-256");
                return Request(transfer, hash);
            case ImageMessageType.Entry:
                return EntryOf(transfer, DecodeEntry(body));
            case ImageMessageType.Data:
                if (body.Length > MaxDataBytes) throw new ImageWireFormatException($"image data of {body.Length} bytes (at most {MaxDataBytes})");
                return DataOf(transfer, message[HeaderLength..]);
            case ImageMessageType.End:
                if (body.Length != 12) throw new ImageWireFormatException("an image end message is 12 bytes");
                long bytes = BinaryPrimitives.ReadInt64LittleEndian(body[4..]);
                uint entries = BinaryPrimitives.ReadUInt32LittleEndian(body);
                if (bytes is < 0 or > ImageRules.MaxImageBytes || entries > ImageRules.MaxEntries) throw new ImageWireFormatException("image end counts out of range");
                return EndOf(transfer, entries, bytes);
            case ImageMessageType.Error:
                if (body.Length > MaxTextBytes) throw new ImageWireFormatException("image error text too long");
                return ErrorOf(transfer, Utf8(body, "error text"));
            default:
                throw new ImageWireFormatException($"unknown image message type {span[0]}");
        }
    }

    private static ImageEntry DecodeEntry(ReadOnlySpan<byte> body)
    {
        if (body.Length < 15) throw new ImageWireFormatException("image entry truncated");
        var kind = (ImageEntryKind)body[0];
        if (kind is not (ImageEntryKind.Directory or ImageEntryKind.File or ImageEntryKind.Symlink)) throw new ImageWireFormatException($"unknown image entry kind {body[0]}");
        int mode = BinaryPrimitives.ReadUInt16LittleEndian(body[1..]);
        long size = BinaryPrimitives.ReadInt64LittleEndian(body[3..]);
        int pathLength = BinaryPrimitives.ReadUInt16LittleEndian(body[11..]);
        if (pathLength > ImageRules.MaxPathBytes || 13 + pathLength + 2 > body.Length) throw new ImageWireFormatException("image entry path length out of range");
        string path = Utf8(body.Slice(13, pathLength), "path");
        int targetLength = BinaryPrimitives.ReadUInt16LittleEndian(body[(13 + pathLength)..]);
        if (15 + pathLength + targetLength != body.Length) throw new ImageWireFormatException("image entry target length does not match the message");
        string target = Utf8(body.Slice(15 + pathLength, targetLength), "link target");
        if (ImageRules.CheckPath(path) is { } badPath) throw new ImageWireFormatException($"image entry with {badPath}");
        if ((mode & ~ImageRules.PermissionBits) != 0) throw new ImageWireFormatException($"image entry {path} has mode bits beyond 0777");
        if (size < 0 || size > ImageRules.MaxImageBytes || (kind != ImageEntryKind.File && size != 0)) throw new ImageWireFormatException($"image entry {path} has size {size}");
        if (kind == ImageEntryKind.Symlink ? ImageRules.CheckLinkTarget(path, target) is { } badLink && Fail(badLink) : target.Length != 0)
            throw new ImageWireFormatException($"image entry {path}: only symlinks have a target");
        return new ImageEntry(path, kind, mode, size, target);
    }

    private static bool Fail(string why) => throw new ImageWireFormatException($"image entry refused: {why}");

    private static string Utf8(ReadOnlySpan<byte> bytes, string what)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new ImageWireFormatException($"image {what} is not UTF-8");
        }
    }
}
