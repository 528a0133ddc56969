using P2PReplay.Cluster.Images;

namespace P2PReplay.Tests.Images;

/// <summary>The Image channel's messages: round trips, refusals, fuzz.</summary>
public sealed class ImageWireTests
{
    private static readonly string Hash = new('c', 64);

    [Fact]
    public void Every_message_type_round_trips()
    {
        var request = ImageMessage.Decode(ImageMessage.Request(7, Hash).Encode());
        Assert.Equal((ImageMessageType.Request, 7UL, Hash), (request.Type, request.Transfer, request.Hash));

        var entry = new ImageEntry("dir/file.txt", ImageEntryKind.File, 0x1A4, 123456);
        Assert.Equal(entry, ImageMessage.Decode(ImageMessage.EntryOf(8, entry).Encode()).Entry);
        var link = new ImageEntry("dir/link", ImageEntryKind.Symlink, 0, 0, "../bin/app");
        Assert.Equal(link, ImageMessage.Decode(ImageMessage.EntryOf(8, link).Encode()).Entry);
        var dir = new ImageEntry("dir", ImageEntryKind.Directory, 0x1ED, 0);
        Assert.Equal(dir, ImageMessage.Decode(ImageMessage.EntryOf(8, dir).Encode()).Entry);

        byte[] data = Enumerable.Range(0, ImageMessage.MaxDataBytes).Select(i => (byte)i).ToArray();
        var decodedData = ImageMessage.Decode(ImageMessage.DataOf(9, data).Encode());
        Assert.Equal((ImageMessageType.Data, 9UL), (decodedData.Type, decodedData.Transfer));
        Assert.Equal(data, decodedData.Data.ToArray());

        var end = ImageMessage.Decode(ImageMessage.EndOf(10, 42, 1L << 32).Encode());
        Assert.Equal((ImageMessageType.End, 42L, 1L << 32), (end.Type, end.Count, end.Bytes));
        var error = ImageMessage.Decode(ImageMessage.ErrorOf(11, "not held here").Encode());
        Assert.Equal((ImageMessageType.Error, "not held here"), (error.Type, error.Text));
        Assert.Equal(512, ImageMessage.Decode(ImageMessage.ErrorOf(11, new string('x', 2000)).Encode()).Text.Length);
    }

    private static byte[] RawEntry(ImageEntryKind kind, int mode, long size, string path, string target = "")
    {
        // Encode a legal entry of the same shape, then patch the fields the encoder would not produce.
        byte[] legal = ImageMessage.EntryOf(1, new ImageEntry(new string('p', System.Text.Encoding.UTF8.GetByteCount(path)), ImageEntryKind.File, 0, 0)).Encode();
        byte[] bytes = new byte[legal.Length + 2 + System.Text.Encoding.UTF8.GetByteCount(target) - 2];
        legal.AsSpan(0, legal.Length - 2).CopyTo(bytes);
        bytes[9] = (byte)kind;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(10), (ushort)mode);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(12), size);
        System.Text.Encoding.UTF8.GetBytes(path).CopyTo(bytes, 22);
        int at = 22 + System.Text.Encoding.UTF8.GetByteCount(path);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(at), (ushort)System.Text.Encoding.UTF8.GetByteCount(target));
        System.Text.Encoding.UTF8.GetBytes(target).CopyTo(bytes, at + 2);
        return bytes;
    }

    [Fact]
    public void Decoder_refuses_traversal_escaping_links_special_modes_and_oversize()
    {
        // The helper builds what a hostile peer could send; a well-formed one decodes.
        Assert.Equal("ok/file", ImageMessage.Decode(RawEntry(ImageEntryKind.File, 0x1A4, 5, "ok/file")).Entry!.Path);
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.File, 0x1A4, 5, "/etc/passwd")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.File, 0x1A4, 5, "a/../../etc")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.File, 0x1A4, 5, "..")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.Symlink, 0, 0, "a/l", "../../etc")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.Symlink, 0, 0, "l", "/etc")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.File, 0x1A4, 0, "f", "x")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.File, 0x9ED, 5, "suid")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.File, 0x1A4, -1, "f")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.File, 0x1A4, ImageRules.MaxImageBytes + 1, "f")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry(ImageEntryKind.Directory, 0x1ED, 5, "d")));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(RawEntry((ImageEntryKind)9, 0x1ED, 0, "d")));
        byte[] oversize = new byte[9 + ImageMessage.MaxDataBytes + 1];
        oversize[0] = (byte)ImageMessageType.Data;
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(oversize));
        byte[] badHash = ImageMessage.Request(1, Hash).Encode();
        badHash[^1] = (byte)'G';
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(badHash));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(new byte[] { 99, 0, 0, 0, 0, 0, 0, 0, 0 }));
        Assert.Throws<ImageWireFormatException>(() => ImageMessage.Decode(new byte[] { 1, 0 }));
    }

    [Fact]
    public void Fuzzed_messages_throw_only_format_errors_and_decoded_entries_obey_the_rules()
    {
        var random = new Random(11);
        byte[][] valid =
        [
            ImageMessage.Request(1, Hash).Encode(),
            ImageMessage.EntryOf(2, new ImageEntry("a/b.txt", ImageEntryKind.File, 0x1A4, 99)).Encode(),
            ImageMessage.EntryOf(2, new ImageEntry("a/l", ImageEntryKind.Symlink, 0, 0, "../a/b.txt")).Encode(),
            ImageMessage.EntryOf(2, new ImageEntry("a", ImageEntryKind.Directory, 0x1ED, 0)).Encode(),
            ImageMessage.DataOf(3, new byte[50]).Encode(),
            ImageMessage.EndOf(4, 3, 99).Encode(),
            ImageMessage.ErrorOf(5, "nope").Encode(),
        ];
        int decoded = 0;
        for (int round = 0; round < 30_000; round++)
        {
            byte[] bytes = (byte[])valid[round % valid.Length].Clone();
            for (int flips = random.Next(1, 4); flips > 0; flips--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            if (random.Next(3) == 0) bytes = bytes[..random.Next(bytes.Length)];
            try
            {
                var message = ImageMessage.Decode(bytes);
                decoded++;
                if (message.Entry is { } entry)
                {
                    Assert.Null(ImageRules.CheckPath(entry.Path));
                    if (entry.Kind == ImageEntryKind.Symlink) Assert.Null(ImageRules.CheckLinkTarget(entry.Path, entry.Target));
                    Assert.InRange(entry.Mode, 0, ImageRules.PermissionBits);
                }
            }
            catch (ImageWireFormatException)
            {
            }
        }
        Assert.InRange(decoded, 1, 29_999);
    }
}
