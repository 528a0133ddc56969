using System.Buffers.Binary;
using System.IO.Hashing;
using ZstdSharp;

namespace P2PReplay.Replay.Format;

/// <summary>
/// Reads a log written by <see cref="LogWriter"/> from any stream, seekable or not, including one still being written:
/// it reads one chunk at a time and never needs the length. A chunk is verified whole (checksum, decompression,
/// record framing) before any of its records is returned. A stream that stops early is not an error:
/// <see cref="TryRead"/> returns false with <see cref="End"/> = <see cref="LogEnd.Truncated"/>.
/// Record payloads stay valid after later reads (each chunk gets its own buffer).
/// </summary>
public sealed class LogReader : IDisposable
{
    private readonly Stream _input;
    private readonly bool _leaveOpen;
    private readonly byte[] _header = new byte[LogFormat.ChunkHeaderSize];
    private readonly Decompressor _decompressor = new();
    private readonly List<(byte Kind, int Start, int Length)> _records = [];
    private byte[] _stored = [];
    private byte[] _chunk = [];
    private int _chunkSequence;
    private long _chunkOffset;
    private int _next;
    private long _position;
    private bool _finalSeen;
    private LogFormatException? _failure;

    public LogReader(Stream input, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(input);
        _input = input;
        _leaveOpen = leaveOpen;
        Span<byte> header = stackalloc byte[LogFormat.StreamHeaderSize];
        int n = ReadFully(header);
        if (n < header.Length)
            throw new LogFormatException($"not a p2preplay log: the stream ends after {n} bytes, inside the {LogFormat.StreamHeaderSize}-byte log header");
        if (!header[..7].SequenceEqual(LogFormat.StreamMagic))
            throw new LogFormatException("not a p2preplay log (bad magic)");
        if (header[7] != LogFormat.Version)
            throw new LogFormatException($"log format version {header[7]} is not supported; this p2preplay reads version {LogFormat.Version}");
        LastGoodOffset = _position;
    }

    /// <summary>
    /// Reads the tail of a log: <paramref name="input"/> starts at the chunk that has sequence number
    /// <paramref name="firstChunk"/> and starts at byte <paramref name="firstOffset"/> of the whole log (no stream header
    /// comes first). A tail cut at another place fails at its first chunk (bad magic or sequence number).
    /// </summary>
    public LogReader(Stream input, int firstChunk, long firstOffset, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentOutOfRangeException.ThrowIfNegative(firstChunk);
        ArgumentOutOfRangeException.ThrowIfLessThan(firstOffset, LogFormat.StreamHeaderSize);
        _input = input;
        _leaveOpen = leaveOpen;
        _position = firstOffset;
        ChunksRead = firstChunk;
        LastGoodOffset = firstOffset;
    }

    /// <summary>Where the record after the last one returned is: its chunk and index (the next chunk's start at a boundary).</summary>
    public LogPosition Position => _next < _records.Count
        ? new LogPosition(_chunkSequence, _chunkOffset, _next)
        : new LogPosition(ChunksRead, LastGoodOffset, 0);

    /// <summary>Why reading stopped; <see cref="LogEnd.None"/> until TryRead returns false.</summary>
    public LogEnd End { get; private set; }

    /// <summary>Byte offset just past the last chunk that was read and verified (the stream header if none).</summary>
    public long LastGoodOffset { get; private set; }

    public int ChunksRead { get; private set; }

    public long RecordsRead { get; private set; }

    /// <summary>Returns the next record, or false at the end of the log (see <see cref="End"/>). Throws <see cref="LogCorruptException"/> on a corrupt chunk, and again on later calls.</summary>
    public bool TryRead(out LogRecord record)
    {
        if (_failure is not null) throw _failure;
        while (true)
        {
            if (_next < _records.Count)
            {
                int index = _next++;
                var (kind, start, length) = _records[index];
                record = new LogRecord(kind, new ReadOnlyMemory<byte>(_chunk, start, length), _chunkSequence, _chunkOffset, index);
                RecordsRead++;
                return true;
            }
            record = default;
            if (End != LogEnd.None) return false;
            try
            {
                if (_finalSeen)
                {
                    // The final chunk ends the log: anything after it is damage (or two logs glued together), not more data.
                    Span<byte> probe = stackalloc byte[1];
                    if (_input.Read(probe) > 0) throw Corrupt(ChunksRead, _position, "data follows the final chunk");
                    End = LogEnd.Complete;
                    return false;
                }
                if (!ReadChunk())
                {
                    End = LogEnd.Truncated;
                    return false;
                }
            }
            catch (LogFormatException e)
            {
                _failure = e;
                throw;
            }
        }
    }

    public void Dispose()
    {
        _decompressor.Dispose();
        if (!_leaveOpen) _input.Dispose();
    }

    /// <summary>Reads and verifies the next chunk into the record list; false if the stream ends before the chunk is whole.</summary>
    private bool ReadChunk()
    {
        int sequence = ChunksRead;
        long offset = _position;
        if (ReadFully(_header) < _header.Length) return false;

        ReadOnlySpan<byte> h = _header;
        if (!h[..4].SequenceEqual(LogFormat.ChunkMagic)) throw Corrupt(sequence, offset, "bad chunk magic");
        uint storedSequence = BinaryPrimitives.ReadUInt32LittleEndian(h[4..]);
        byte flags = h[8];
        uint uncompressed = BinaryPrimitives.ReadUInt32LittleEndian(h[12..]);
        uint storedLength = BinaryPrimitives.ReadUInt32LittleEndian(h[16..]);
        ulong checksum = BinaryPrimitives.ReadUInt64LittleEndian(h[20..]);
        uint headerCheck = BinaryPrimitives.ReadUInt32LittleEndian(h[28..]);
        if (storedSequence != (uint)sequence) throw Corrupt(sequence, offset, $"sequence number {storedSequence}, expected {sequence}");
        if ((flags & ~LogFormat.KnownFlags) != 0) throw Corrupt(sequence, offset, $"unknown flags 0x{flags:x2}");
        if (h[9] != 0 || h[10] != 0 || h[11] != 0) throw Corrupt(sequence, offset, "reserved header bytes are not zero");
        if (uncompressed > LogFormat.MaxChunkBytes) throw Corrupt(sequence, offset, $"uncompressed length {uncompressed} exceeds the {LogFormat.MaxChunkBytes}-byte cap");
        if (storedLength > LogFormat.MaxChunkBytes) throw Corrupt(sequence, offset, $"stored length {storedLength} exceeds the {LogFormat.MaxChunkBytes}-byte cap");
        bool compressed = (flags & LogFormat.FlagCompressed) != 0;
        if (!compressed && storedLength != uncompressed)
            throw Corrupt(sequence, offset, $"stored length {storedLength} differs from uncompressed length {uncompressed} of an uncompressed chunk");
        // Checked before waiting for the payload, so a damaged length is corruption, not an apparent truncation.
        if (XxHash32.HashToUInt32(h[..28]) != headerCheck) throw Corrupt(sequence, offset, "chunk header checksum mismatch");

        // Each chunk gets a fresh buffer because returned records point into it.
        byte[] chunk = new byte[uncompressed];
        byte[] stored;
        if (compressed)
        {
            if (_stored.Length < storedLength) _stored = new byte[storedLength];
            stored = _stored;
        }
        else
        {
            stored = chunk;
        }
        Span<byte> payload = stored.AsSpan(0, (int)storedLength);
        if (ReadFully(payload) < payload.Length) return false;
        if (LogFormat.Checksum(h[..20], payload) != checksum) throw Corrupt(sequence, offset, "checksum mismatch");

        if (compressed)
        {
            int written;
            try
            {
                written = _decompressor.Unwrap(payload, chunk);
            }
            catch (ZstdException e)
            {
                throw Corrupt(sequence, offset, $"decompression failed ({e.Message})", e);
            }
            if (written != uncompressed) throw Corrupt(sequence, offset, $"decompressed to {written} bytes, header says {uncompressed}");
        }

        ParseRecords(chunk, sequence, offset);
        _chunk = chunk;
        _chunkSequence = sequence;
        _chunkOffset = offset;
        _next = 0;
        ChunksRead++;
        LastGoodOffset = _position;
        if ((flags & LogFormat.FlagFinal) != 0) _finalSeen = true;
        return true;
    }

    private void ParseRecords(byte[] chunk, int sequence, long offset)
    {
        _records.Clear();
        int pos = 0;
        while (pos < chunk.Length)
        {
            byte kind = chunk[pos];
            if (kind == 0) throw Corrupt(sequence, offset, $"record {_records.Count} has the reserved kind 0");
            int n = LogFormat.ReadVarint(chunk.AsSpan(pos + 1), out uint length);
            if (n == 0) throw Corrupt(sequence, offset, $"record {_records.Count} has a malformed length");
            int start = pos + 1 + n;
            if (length > (uint)(chunk.Length - start)) throw Corrupt(sequence, offset, $"record {_records.Count} ({length} bytes) runs past the end of its chunk");
            _records.Add((kind, start, (int)length));
            pos = start + (int)length;
        }
    }

    private int ReadFully(Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = _input.Read(buffer[total..]);
            if (n <= 0) break;
            total += n;
            _position += n;
        }
        return total;
    }

    private static LogCorruptException Corrupt(int chunk, long offset, string reason, Exception? inner = null) => new(chunk, offset, reason, inner);
}
