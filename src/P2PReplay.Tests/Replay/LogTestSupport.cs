using P2PReplay.Replay.Format;

namespace P2PReplay.Tests.Replay;

/// <summary>A non-seekable stream over bytes that hands out 1..maxRead bytes per Read, like a pipe or socket.</summary>
internal sealed class TricklingStream(byte[] data, int seed, int maxRead = 7) : Stream
{
    private readonly Random _random = new(seed);
    private int _position;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n = Math.Min(Math.Min(buffer.Length, data.Length - _position), _random.Next(1, maxRead + 1));
        data.AsSpan(_position, n).CopyTo(buffer);
        _position += n;
        return n;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

internal sealed record Rec(byte Kind, byte[] Payload);

internal static class LogTestSupport
{
    /// <summary>Reads everything; returns the records and how the log ended.</summary>
    public static (List<LogRecord> Records, LogEnd End, LogReader Reader) ReadAll(Stream input)
    {
        var reader = new LogReader(input);
        var records = new List<LogRecord>();
        while (reader.TryRead(out LogRecord r)) records.Add(r);
        return (records, reader.End, reader);
    }

    public static byte[] Compressible(Random random, int length)
    {
        var bytes = new byte[length];
        for (int i = 0; i < length; i++) bytes[i] = (byte)("syscall read fd=3 "[i % 18] + (random.Next(8) == 0 ? 1 : 0));
        return bytes;
    }

    public static byte[] Incompressible(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>A small log of several chunks; the chunk boundaries (stream offsets) and records per chunk come with it.</summary>
    public static (byte[] Log, List<Rec> Records, List<long> ChunkEnds, List<int> RecordsBefore) SmallLog(int seed = 1, bool compressible = true)
    {
        var random = new Random(seed);
        var records = new List<Rec>();
        var ends = new List<long>();
        var before = new List<int>();
        var output = new MemoryStream();
        using (var writer = new LogWriter(output, chunkTargetBytes: 1 << 20, leaveOpen: true))
        {
            for (int chunk = 0; chunk < 4; chunk++)
            {
                for (int i = 0; i < 3 + chunk; i++)
                {
                    byte[] payload = compressible ? Compressible(random, random.Next(0, 60)) : Incompressible(random, random.Next(0, 40));
                    var rec = new Rec((byte)random.Next(1, 256), payload);
                    records.Add(rec);
                    writer.Append(rec.Kind, rec.Payload);
                }
                writer.Flush();
                ends.Add(writer.BytesWritten);
                before.Add(records.Count);
            }
            var trailer = new Rec(0xee, "end"u8.ToArray());
            records.Add(trailer);
            writer.Complete(trailer.Kind, trailer.Payload);
            ends.Add(writer.BytesWritten);
            before.Add(records.Count);
            Assert.Equal(5, writer.ChunkCount);
        }
        return (output.ToArray(), records, ends, before);
    }

    public static void AssertSame(Rec expected, LogRecord actual)
    {
        Assert.Equal(expected.Kind, actual.Kind);
        Assert.True(expected.Payload.AsSpan().SequenceEqual(actual.Payload.Span), $"payload of a kind {expected.Kind} record differs");
    }
}
