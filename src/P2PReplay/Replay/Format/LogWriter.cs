using ZstdSharp;

namespace P2PReplay.Replay.Format;

/// <summary>
/// Writes records into the chunked log format (see <see cref="LogFormat"/>). Records are buffered and emitted as a
/// chunk when the buffer reaches the target size, on <see cref="Flush"/>, and on <see cref="Complete"/>.
/// Dispose closes the output stream unless leaveOpen.
/// </summary>
public sealed class LogWriter : IDisposable
{
    private const int CompressionLevel = 1;

    private readonly Stream _output;
    private readonly bool _leaveOpen;
    private readonly int _chunkTargetBytes;
    private readonly Compressor _compressor = new(CompressionLevel);
    private byte[] _buffer;
    private int _buffered;
    private int _bufferedRecords;
    private byte[] _compressed = [];
    private readonly byte[] _header = new byte[LogFormat.ChunkHeaderSize];
    private bool _completed;
    private bool _failed;
    private bool _disposed;

    public LogWriter(Stream output, int chunkTargetBytes = 64 * 1024, bool leaveOpen = false)
        : this(output, chunkTargetBytes, leaveOpen, firstChunk: -1)
    {
    }

    /// <summary>
    /// Continues a log another writer began (a replica taking over as primary): no stream header, chunk sequence
    /// numbers go on from <paramref name="firstChunk"/>; the bytes append to the ones the reader already holds.
    /// </summary>
    public static LogWriter Continuing(Stream output, int firstChunk) => new(output, 64 * 1024, leaveOpen: false, firstChunk);

    private LogWriter(Stream output, int chunkTargetBytes, bool leaveOpen, int firstChunk)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkTargetBytes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(chunkTargetBytes, LogFormat.MaxChunkBytes);
        _output = output;
        _leaveOpen = leaveOpen;
        _chunkTargetBytes = chunkTargetBytes;
        _buffer = new byte[Math.Min(chunkTargetBytes + 64, LogFormat.MaxChunkBytes)];
        if (firstChunk >= 0)
        {
            ChunkCount = firstChunk;
            return;
        }
        Span<byte> header = stackalloc byte[LogFormat.StreamHeaderSize];
        LogFormat.WriteStreamHeader(header);
        Write(header);
    }

    /// <summary>Stored bytes written so far, stream and chunk headers included.</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Records appended (the trailer included once written).</summary>
    public long RecordCount { get; private set; }

    public int ChunkCount { get; private set; }

    /// <summary>Record bytes (kind, length, payload) of the emitted chunks before compression.</summary>
    public long UncompressedBytes { get; private set; }

    public bool IsCompleted => _completed;

    /// <summary>Buffers a record; emits a chunk once the buffer reaches the target size. A record larger than the target gets a chunk of its own.</summary>
    public void Append(byte kind, ReadOnlySpan<byte> payload)
    {
        ThrowIfUnusable();
        if (_completed) throw new InvalidOperationException("the log is complete; no record can follow the trailer");
        AppendRecord(kind, payload);
        if (_buffered >= _chunkTargetBytes) EmitChunk(final: false);
    }

    /// <summary>Emits the buffered records as a chunk now and flushes the stream (at digests, and whenever a replica must see the data).</summary>
    public void Flush()
    {
        ThrowIfUnusable();
        if (_completed) return;
        if (_bufferedRecords > 0) EmitChunk(final: false);
        FlushStream();
    }

    /// <summary>Writes the trailer record (after any buffered records) in the final chunk and flushes. Nothing may be appended afterwards.</summary>
    public void Complete(byte trailerKind, ReadOnlySpan<byte> trailerPayload)
    {
        ThrowIfUnusable();
        if (_completed) throw new InvalidOperationException("the log is already complete");
        AppendRecord(trailerKind, trailerPayload);
        EmitChunk(final: true);
        _completed = true;
        FlushStream();
    }

    /// <summary>Emits buffered records (not as a final chunk: the log reads as truncated) unless complete or a write failed, then closes the stream unless leaveOpen.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        try
        {
            if (!_completed && !_failed && _bufferedRecords > 0)
            {
                EmitChunk(final: false);
                FlushStream();
            }
        }
        finally
        {
            _disposed = true;
            _compressor.Dispose();
            if (!_leaveOpen) _output.Dispose();
        }
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // A failed write may have left half a chunk in the stream; chunks after it would only hide where the log broke.
        if (_failed) throw new InvalidOperationException("an earlier write to the log failed; the log ends at its last whole chunk");
    }

    private void AppendRecord(byte kind, ReadOnlySpan<byte> payload)
    {
        if (kind == 0) throw new ArgumentOutOfRangeException(nameof(kind), "record kind 0 is reserved");
        if (payload.Length > LogFormat.MaxRecordPayload)
            throw new ArgumentOutOfRangeException(nameof(payload), $"a log record holds at most {LogFormat.MaxRecordPayload} bytes, not {payload.Length}");
        int size = 1 + LogFormat.VarintSize((uint)payload.Length) + payload.Length;
        // Keep every chunk under the reader's cap: a big record goes to a chunk of its own.
        if (_buffered + size > LogFormat.MaxChunkBytes) EmitChunk(final: false);
        EnsureBuffer(_buffered + size);
        Span<byte> dest = _buffer.AsSpan(_buffered);
        dest[0] = kind;
        int n = 1 + LogFormat.WriteVarint(dest[1..], (uint)payload.Length);
        payload.CopyTo(dest[n..]);
        _buffered += size;
        _bufferedRecords++;
        RecordCount++;
    }

    private void EnsureBuffer(int needed)
    {
        if (needed <= _buffer.Length) return;
        Array.Resize(ref _buffer, Math.Min(Math.Max(needed, _buffer.Length * 2), LogFormat.MaxChunkBytes));
    }

    private void EmitChunk(bool final)
    {
        ReadOnlySpan<byte> raw = _buffer.AsSpan(0, _buffered);
        ReadOnlySpan<byte> stored = raw;
        byte flags = final ? LogFormat.FlagFinal : (byte)0;
        int bound = Compressor.GetCompressBound(raw.Length);
        if (_compressed.Length < bound) _compressed = new byte[bound];
        // Compress only when it pays: incompressible data (already-compressed files, random bytes) is stored raw.
        int written = _compressor.Wrap(raw, _compressed);
        if (written < raw.Length)
        {
            stored = _compressed.AsSpan(0, written);
            flags |= LogFormat.FlagCompressed;
        }
        LogFormat.WriteChunkHeader(_header, (uint)ChunkCount, flags, raw.Length, stored);
        Write(_header);
        Write(stored);
        UncompressedBytes += raw.Length;
        ChunkCount++;
        _buffered = 0;
        _bufferedRecords = 0;
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        try
        {
            _output.Write(bytes);
        }
        catch
        {
            _failed = true;
            throw;
        }
        BytesWritten += bytes.Length;
    }

    private void FlushStream()
    {
        try
        {
            _output.Flush();
        }
        catch
        {
            _failed = true;
            throw;
        }
    }
}
