using System.Buffers.Binary;
using System.IO.Pipes;
using P2PReplay.Replay.Format;
using ZstdSharp;
using static P2PReplay.Tests.Replay.LogTestSupport;

namespace P2PReplay.Tests.Replay;

public sealed class LogFormatTests
{
    [Theory]
    [InlineData(1, false)]
    [InlineData(2, true)]
    public void Round_trip_of_records_of_random_sizes(int seed, bool trickle)
    {
        var random = new Random(seed);
        const int target = 4096;
        var expected = new List<Rec>();
        var output = new MemoryStream();
        long written, uncompressed;
        int chunks;
        using (var writer = new LogWriter(output, target, leaveOpen: true))
        {
            for (int i = 0; i < 600; i++)
            {
                // Mostly small, sometimes empty, sometimes bigger than a whole chunk.
                int size = random.Next(10) switch { 0 => 0, 1 => random.Next(target, 3 * target), _ => random.Next(1, 200) };
                byte[] payload = random.Next(2) == 0 ? Compressible(random, size) : Incompressible(random, size);
                var rec = new Rec((byte)random.Next(1, 256), payload);
                expected.Add(rec);
                writer.Append(rec.Kind, rec.Payload);
                if (random.Next(50) == 0) writer.Flush();
            }
            expected.Add(new Rec(0xff, [1, 2, 3]));
            writer.Complete(0xff, [1, 2, 3]);
            Assert.Equal(expected.Count, writer.RecordCount);
            Assert.Equal(output.Length, writer.BytesWritten);
            Assert.Throws<InvalidOperationException>(() => writer.Append(1, [1]));
            written = writer.BytesWritten;
            uncompressed = writer.UncompressedBytes;
            chunks = writer.ChunkCount;
        }
        Assert.True(chunks > 10);

        Stream input = trickle ? new TricklingStream(output.ToArray(), seed) : new MemoryStream(output.ToArray());
        var (records, end, reader) = ReadAll(input);
        Assert.Equal(LogEnd.Complete, end);
        Assert.Equal(expected.Count, records.Count);
        for (int i = 0; i < records.Count; i++) AssertSame(expected[i], records[i]);
        Assert.Equal(chunks, reader.ChunksRead);
        Assert.Equal(expected.Count, reader.RecordsRead);
        Assert.Equal(written, reader.LastGoodOffset);
        // Chunk numbers count up from 0 and offsets grow with them.
        Assert.Equal(0, records[0].Chunk);
        Assert.Equal(8, records[0].Offset);
        for (int i = 1; i < records.Count; i++)
        {
            Assert.True(records[i].Chunk == records[i - 1].Chunk || records[i].Chunk == records[i - 1].Chunk + 1);
            Assert.Equal(records[i].Chunk == records[i - 1].Chunk, records[i].Offset == records[i - 1].Offset);
        }
        Assert.True(uncompressed > 0);
    }

    [Fact]
    public void Compressible_chunks_are_compressed_and_random_ones_stored_raw()
    {
        var random = new Random(3);
        foreach (bool compressible in new[] { true, false })
        {
            var output = new MemoryStream();
            using (var writer = new LogWriter(output, leaveOpen: true))
            {
                writer.Append(1, compressible ? Compressible(random, 10000) : Incompressible(random, 10000));
                writer.Flush();
                Assert.Equal(compressible, writer.BytesWritten < writer.UncompressedBytes);
            }
            byte flags = output.ToArray()[8 + 8];
            Assert.Equal(compressible ? 1 : 0, flags & 1);
            var (records, end, _) = ReadAll(new MemoryStream(output.ToArray()));
            Assert.Equal(LogEnd.Truncated, end);
            Assert.Single(records);
        }
    }

    [Fact]
    public void A_record_larger_than_the_target_gets_a_chunk_of_its_own()
    {
        var output = new MemoryStream();
        var big = Incompressible(new Random(4), 100_000);
        using (var writer = new LogWriter(output, chunkTargetBytes: 1000, leaveOpen: true))
        {
            writer.Append(7, [1]);
            writer.Append(8, big);
            writer.Append(9, [2]);
            writer.Complete(10, []);
            Assert.Equal(2, writer.ChunkCount);
        }
        var (records, end, _) = ReadAll(new TricklingStream(output.ToArray(), 4, maxRead: 5000));
        Assert.Equal(LogEnd.Complete, end);
        Assert.Equal([7, 8, 9, 10], records.Select(r => r.Kind));
        Assert.True(big.AsSpan().SequenceEqual(records[1].Payload.Span));
        Assert.Equal([0, 0, 1, 1], records.Select(r => r.Chunk));
    }

    [Fact]
    public void Records_near_the_cap_split_chunks_to_stay_under_it()
    {
        var output = new MemoryStream();
        var huge = new byte[LogFormat.MaxRecordPayload];
        using (var writer = new LogWriter(output, chunkTargetBytes: LogFormat.MaxChunkBytes, leaveOpen: true))
        {
            writer.Append(1, [1, 2, 3]);
            writer.Append(2, huge);
            Assert.Throws<ArgumentOutOfRangeException>(() => writer.Append(3, new byte[LogFormat.MaxRecordPayload + 1]));
            writer.Complete(4, []);
        }
        var (records, end, _) = ReadAll(new MemoryStream(output.ToArray()));
        Assert.Equal(LogEnd.Complete, end);
        Assert.Equal([1, 2, 4], records.Select(r => r.Kind));
        Assert.Equal(huge.Length, records[1].Payload.Length);
    }

    [Fact]
    public void Append_after_complete_and_kind_zero_throw()
    {
        using var writer = new LogWriter(new MemoryStream());
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.Append(0, [1]));
        writer.Append(1, [1]);
        writer.Complete(2, []);
        Assert.True(writer.IsCompleted);
        Assert.Throws<InvalidOperationException>(() => writer.Append(1, [1]));
        Assert.Throws<InvalidOperationException>(() => writer.Complete(2, []));
    }

    [Fact]
    public void Dispose_without_complete_keeps_the_records_and_reads_as_truncated()
    {
        var output = new MemoryStream();
        using (var writer = new LogWriter(output, leaveOpen: true))
        {
            writer.Append(1, [1]);
            writer.Append(2, [2]);
        }
        var (records, end, reader) = ReadAll(new MemoryStream(output.ToArray()));
        Assert.Equal(LogEnd.Truncated, end);
        Assert.Equal(2, records.Count);
        Assert.Equal(output.Length, reader.LastGoodOffset);
    }

    [Fact]
    public void A_failed_write_stops_the_writer()
    {
        var output = new FailingStream(failAfter: 200);
        var writer = new LogWriter(output);
        writer.Append(1, new byte[100]);
        writer.Flush();
        writer.Append(2, Incompressible(new Random(7), 300));
        Assert.Throws<IOException>(() => writer.Flush());
        Assert.Throws<InvalidOperationException>(() => writer.Append(3, [1]));
        Assert.Throws<InvalidOperationException>(() => writer.Complete(4, []));
        writer.Dispose();
        var (records, end, _) = ReadAll(new MemoryStream(output.ToArray()));
        Assert.Equal(LogEnd.Truncated, end);
        Assert.Equal([1], records.Select(r => r.Kind));
    }

    private sealed class FailingStream(int failAfter) : MemoryStream
    {
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            int room = failAfter - (int)Length;
            base.Write(buffer[..Math.Clamp(room, 0, buffer.Length)]);
            if (room < buffer.Length) throw new IOException("disk full");
        }
    }

    [Fact]
    public void Bytes_after_the_final_chunk_are_corruption()
    {
        var (log, expected, ends, _) = SmallLog();
        byte[] longer = [.. log, 0];
        var reader = new LogReader(new MemoryStream(longer));
        int n = 0;
        var e = Assert.Throws<LogCorruptException>(() => { while (reader.TryRead(out _)) n++; });
        Assert.Equal(expected.Count, n);
        Assert.Contains("follows the final chunk", e.Message);
        Assert.Contains($"at byte {ends[^1]}", e.Message);
        // The failure sticks.
        Assert.Throws<LogCorruptException>(() => reader.TryRead(out _));
    }

    [Fact]
    public void Header_problems_are_named()
    {
        var (log, _, _, _) = SmallLog();
        Assert.Contains("not a p2preplay log", Assert.Throws<LogFormatException>(() => new LogReader(new MemoryStream("P2PRLOX\x01"u8.ToArray()))).Message);
        byte[] v2 = [.. log];
        v2[7] = 2;
        Assert.Equal("log format version 2 is not supported; this p2preplay reads version 1",
            Assert.Throws<LogFormatException>(() => new LogReader(new MemoryStream(v2))).Message);
        Assert.Contains("ends after 3 bytes", Assert.Throws<LogFormatException>(() => new LogReader(new MemoryStream(log[..3]))).Message);
        Assert.Throws<LogFormatException>(() => new LogReader(new MemoryStream()));
        // A bare header: a recording killed before its first chunk.
        var (records, end, _) = ReadAll(new MemoryStream(log[..8]));
        Assert.Empty(records);
        Assert.Equal(LogEnd.Truncated, end);
    }

    [Fact]
    public void Truncation_at_every_offset_returns_the_whole_chunks_before_it()
    {
        var (log, expected, ends, before) = SmallLog();
        for (int cut = 0; cut <= log.Length; cut++)
        {
            if (cut < LogFormat.StreamHeaderSize)
            {
                Assert.Throws<LogFormatException>(() => new LogReader(new MemoryStream(log[..cut])));
                continue;
            }
            var (records, end, reader) = ReadAll(new TricklingStream(log[..cut], cut));
            int whole = ends.Count(e => e <= cut);
            int count = whole == 0 ? 0 : before[whole - 1];
            Assert.Equal(cut == log.Length ? LogEnd.Complete : LogEnd.Truncated, end);
            Assert.Equal(count, records.Count);
            for (int i = 0; i < count; i++) AssertSame(expected[i], records[i]);
            Assert.Equal(whole == 0 ? 8 : ends[whole - 1], reader.LastGoodOffset);
            Assert.Equal(whole, reader.ChunksRead);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Every_bit_flip_is_detected(bool compressible)
    {
        var (log, expected, ends, before) = SmallLog(seed: 5, compressible);
        for (int bit = 0; bit < log.Length * 8; bit++)
        {
            byte[] damaged = [.. log];
            damaged[bit / 8] ^= (byte)(1 << (bit % 8));
            int at = bit / 8;
            var records = new List<LogRecord>();
            var e = Assert.ThrowsAny<LogFormatException>(() =>
            {
                var reader = new LogReader(new MemoryStream(damaged));
                while (reader.TryRead(out LogRecord r)) records.Add(r);
            });
            if (at < LogFormat.StreamHeaderSize)
            {
                Assert.IsNotType<LogCorruptException>(e);
                continue;
            }
            // Blamed on the chunk holding the byte; only records of earlier chunks came out.
            int chunk = ends.Count(end => end <= at);
            var corrupt = Assert.IsType<LogCorruptException>(e);
            Assert.Equal(chunk, corrupt.Chunk);
            Assert.Contains($"log chunk {chunk} at byte {(chunk == 0 ? 8 : ends[chunk - 1])} is corrupt", e.Message);
            Assert.Equal(chunk == 0 ? 0 : before[chunk - 1], records.Count);
            for (int i = 0; i < records.Count; i++) AssertSame(expected[i], records[i]);
        }
    }

    [Fact]
    public void Random_mutations_raise_only_format_errors_with_bounded_allocation()
    {
        var (log, expected, _, _) = SmallLog(seed: 6);
        var random = new Random(6);
        for (int iteration = 0; iteration < 4000; iteration++)
        {
            var bytes = new List<byte>(log);
            int mutations = random.Next(1, 5);
            for (int m = 0; m < mutations; m++)
            {
                int at = random.Next(bytes.Count + 1);
                switch (random.Next(6))
                {
                    case 0 when at < bytes.Count: bytes[at] = (byte)random.Next(256); break;
                    case 1: bytes.InsertRange(at, Enumerable.Range(0, random.Next(1, 9)).Select(_ => (byte)random.Next(256))); break;
                    case 2: bytes.RemoveRange(Math.Min(at, bytes.Count), Math.Min(random.Next(1, 40), bytes.Count - Math.Min(at, bytes.Count))); break;
                    case 3 when at + 4 <= bytes.Count: // a plausible huge length
                        BinaryPrimitives.WriteUInt32LittleEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes).Slice(at, 4), (uint)random.Next()); break;
                    case 4: // a copy of another stretch of the log (whole chunks moved or doubled)
                        int from = random.Next(log.Length), len = random.Next(1, Math.Min(300, log.Length - from) + 1);
                        bytes.InsertRange(at, log.AsSpan(from, len).ToArray());
                        break;
                    default: if (at < bytes.Count) bytes[at] ^= (byte)(1 << random.Next(8)); break;
                }
            }
            byte[] damaged = [.. bytes];
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            var records = new List<LogRecord>();
            try
            {
                var reader = new LogReader(new TricklingStream(damaged, iteration, maxRead: 64));
                while (reader.TryRead(out LogRecord r)) records.Add(r);
            }
            catch (LogFormatException)
            {
            }
            Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 1 << 20, $"iteration {iteration} allocated too much");
            // Whatever came out is a prefix of what was written: damage never yields a record that was not recorded.
            Assert.True(records.Count <= expected.Count);
            for (int i = 0; i < records.Count; i++) AssertSame(expected[i], records[i]);
        }
    }

    /// <summary>Chunks with valid checksums but bad contents: what only the validation (not the checksum) catches.</summary>
    [Theory]
    [InlineData("kind0", "reserved kind 0")]
    [InlineData("overrun", "runs past the end of its chunk")]
    [InlineData("varint", "malformed length")]
    [InlineData("sequence", "sequence number 1, expected 0")]
    [InlineData("reserved", "reserved header bytes")]
    [InlineData("flags", "unknown flags")]
    [InlineData("cap", "exceeds the 4194304-byte cap")]
    [InlineData("garbage", "decompression failed")]
    [InlineData("shortzstd", "decompressed to 100 bytes, header says 200")]
    [InlineData("rawlength", "differs from uncompressed length")]
    [InlineData("magic", "bad chunk magic")]
    public void Validated_chunk_fields_are_reported(string defect, string reason)
    {
        byte[] zstd100;
        using (var c = new Compressor(1)) zstd100 = c.Wrap((byte[])[1, 99, .. new byte[98]]).ToArray();
        (uint seq, byte flags, int uncompressed, byte[] stored) = defect switch
        {
            "kind0" => (0u, (byte)0, 3, new byte[] { 0, 1, 5 }),
            "overrun" => (0u, (byte)0, 3, new byte[] { 1, 5, 5 }),
            "varint" => (0u, (byte)0, 3, new byte[] { 1, 0x80, 0x80 }),
            "sequence" => (1u, (byte)0, 2, new byte[] { 1, 0 }),
            "flags" => (0u, (byte)0x80, 2, new byte[] { 1, 0 }),
            "cap" => (0u, (byte)1, LogFormat.MaxChunkBytes + 1, new byte[] { 1, 0 }),
            "garbage" => (0u, (byte)1, 10, new byte[] { 1, 2, 3, 4, 5 }),
            "shortzstd" => (0u, (byte)1, 200, zstd100),
            "rawlength" => (0u, (byte)0, 3, new byte[] { 1, 0 }),
            _ => (0u, (byte)0, 2, new byte[] { 1, 0 }),
        };
        var header = new byte[LogFormat.ChunkHeaderSize];
        LogFormat.WriteChunkHeader(header, seq, flags, uncompressed, stored);
        if (defect == "reserved" || defect == "magic")
        {
            header[defect == "reserved" ? 10 : 0] ^= 1;
            // Re-seal both checksums so only the field itself is wrong.
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(20), LogFormat.Checksum(header.AsSpan(0, 20), stored));
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(28), System.IO.Hashing.XxHash32.HashToUInt32(header.AsSpan(0, 28)));
        }
        var log = new byte[8];
        LogFormat.WriteStreamHeader(log);
        var reader = new LogReader(new MemoryStream([.. log, .. header, .. stored]));
        var e = Assert.Throws<LogCorruptException>(() => reader.TryRead(out _));
        Assert.StartsWith("log chunk 0 at byte 8 is corrupt: ", e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public async Task A_reader_follows_a_log_while_it_is_written()
    {
        var server = new AnonymousPipeServerStream(PipeDirection.Out);
        using var client = new AnonymousPipeClientStream(PipeDirection.In, server.ClientSafePipeHandle);
        var writer = new LogWriter(server);
        writer.Append(1, [10]);
        writer.Append(2, [20]);
        writer.Flush();
        using var reader = new LogReader(client, leaveOpen: true);
        // Records come out after Flush though the writer is neither complete nor closed.
        Assert.True(reader.TryRead(out LogRecord first));
        Assert.True(reader.TryRead(out LogRecord second));
        Assert.Equal((1, 10, 2, 20), (first.Kind, first.Payload.Span[0], second.Kind, second.Payload.Span[0]));
        var finish = Task.Run(async () =>
        {
            await Task.Delay(50);
            writer.Append(3, [30]);
            writer.Complete(4, []);
            writer.Dispose(); // closes the pipe: the reader sees nothing after the final chunk
        });
        Assert.True(reader.TryRead(out LogRecord third));
        Assert.True(reader.TryRead(out LogRecord trailer));
        Assert.Equal((3, 4), (third.Kind, trailer.Kind));
        Assert.False(reader.TryRead(out _));
        Assert.Equal(LogEnd.Complete, reader.End);
        await finish;
    }
}
