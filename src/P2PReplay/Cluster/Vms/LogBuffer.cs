namespace P2PReplay.Cluster.Vms;

/// <summary>
/// The primary's copy of a VM's log as the recorder writes it: an append-only byte sequence that replica senders
/// read from any offset, plus marks tying exits to log lengths (for output commit). Kept in memory, from
/// <see cref="Start"/> on: the part behind the latest checkpoint (a replica's VM snapshot) that every replica holds
/// is dropped (<see cref="TruncateBefore"/>), so a long-running VM's log stays bounded.
/// </summary>
internal sealed class LogBuffer(long start = 0)
{
    private readonly Lock gate = new();
    private readonly List<byte[]> segments = [];
    private readonly List<long> segmentStarts = [];
    private readonly List<(long Exit, long Length)> marks = [];
    private TaskCompletionSource grown = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The log's end: an offset in the whole log (which began before <see cref="Start"/> when truncated).</summary>
    public long Length { get; private set; } = start;

    /// <summary>The first byte still held.</summary>
    public long Start
    {
        get
        {
            lock (gate) return heldFrom;
        }
    }

    private long heldFrom = start;

    /// <summary>Drops whole appended pieces that end at or before the offset (never beyond the end); returns the new start.</summary>
    public long TruncateBefore(long offset)
    {
        lock (gate)
        {
            int drop = 0;
            while (drop < segments.Count && segmentStarts[drop] + segments[drop].Length <= offset) drop++;
            if (drop == 0) return heldFrom;
            heldFrom = segmentStarts[drop - 1] + segments[drop - 1].Length;
            segments.RemoveRange(0, drop);
            segmentStarts.RemoveRange(0, drop);
            // Marks behind the start answer nothing any more; the last of them still bounds what a reader at the start has.
            int stale = marks.FindLastIndex(m => m.Length <= heldFrom);
            if (stale > 0) marks.RemoveRange(0, stale);
            return heldFrom;
        }
    }

    /// <summary>A planned switchover sealed the log here: nothing beyond is ever shipped (-1: not sealed).</summary>
    private long sealedAt = -1;
    public bool Completed { get; private set; }

    /// <summary>The log up to here is whole chunks ending after an exit (what may be sent: a replica that takes over
    /// continues from exactly such a point). The whole log once it is complete.</summary>
    public long ShippableLength
    {
        get
        {
            lock (gate) return ShippableUnderLock();
        }
    }

    private long ShippableUnderLock()
    {
        long shippable = Completed ? Length : marks.Count == 0 ? 0 : marks[^1].Length;
        return sealedAt >= 0 ? Math.Min(shippable, sealedAt) : shippable;
    }

    /// <summary>
    /// Seals the log where the writer stopped (a planned switchover: the vCPU is held and everything it did is
    /// flushed and marked); returns that length, or -1 when part of it is not marked yet (not a clean point).
    /// Whatever the writer appends later (a held copy being torn down) is never shipped.
    /// </summary>
    public bool Sealed
    {
        get
        {
            lock (gate) return sealedAt >= 0;
        }
    }

    public long Seal()
    {
        lock (gate)
        {
            long shippable = Completed ? Length : marks.Count == 0 ? 0 : marks[^1].Length;
            if (shippable != Length) return -1;
            sealedAt = Length;
            return sealedAt;
        }
    }

    /// <summary>The switchover was called off before anyone acted on the seal: the log goes on.</summary>
    public void Unseal()
    {
        TaskCompletionSource signal;
        lock (gate)
        {
            sealedAt = -1;
            signal = grown;
            grown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        signal.TrySetResult();
    }

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return;
        TaskCompletionSource signal;
        lock (gate)
        {
            if (Completed) throw new InvalidOperationException("the log is complete");
            segmentStarts.Add(Length);
            segments.Add(bytes.ToArray());
            Length += bytes.Length;
            signal = grown;
            grown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        signal.TrySetResult();
    }

    /// <summary>The log up to Length holds every exit up to this one, in whole chunks (called after a flush).</summary>
    public void Mark(long exit)
    {
        TaskCompletionSource signal;
        lock (gate)
        {
            if (marks.Count == 0 || marks[^1].Exit < exit) marks.Add((exit, Length));
            else marks[^1] = (exit, Length);
            signal = grown;
            grown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        signal.TrySetResult();
    }

    public void Complete()
    {
        TaskCompletionSource signal;
        lock (gate)
        {
            Completed = true;
            signal = grown;
        }
        signal.TrySetResult();
    }

    /// <summary>The highest exit whose log a reader holding this many bytes has in full (-1: none).</summary>
    public long ExitCoveredBy(long bytes)
    {
        lock (gate)
        {
            // Marks grow in both exit and length: binary search for the last one within the bytes held.
            int low = 0, high = marks.Count - 1, found = -1;
            while (low <= high)
            {
                int middle = (low + high) >>> 1;
                if (marks[middle].Length <= bytes)
                {
                    found = middle;
                    low = middle + 1;
                }
                else
                {
                    high = middle - 1;
                }
            }
            return found < 0 ? -1 : marks[found].Exit;
        }
    }

    /// <summary>Copies up to max bytes from the offset (not past the end of the appended piece it starts in, with
    /// <paramref name="onePiece"/>); empty when nothing new.</summary>
    public byte[] Read(long offset, int max, bool onePiece = false)
    {
        lock (gate)
        {
            if (offset >= Length || offset < heldFrom) return [];
            int index = segmentStarts.BinarySearch(offset);
            if (index < 0) index = ~index - 1;
            var result = new MemoryStream();
            long position = offset;
            while (index < segments.Count && result.Length < max)
            {
                int skip = (int)(position - segmentStarts[index]);
                int take = (int)Math.Min(segments[index].Length - skip, max - result.Length);
                result.Write(segments[index], skip, take);
                position += take;
                index++;
                if (onePiece) break;
            }
            return result.ToArray();
        }
    }

    /// <summary>Completes when the shippable log grows past the length or completes, or the timeout passes.</summary>
    public Task WaitBeyondAsync(long length, TimeSpan timeout, CancellationToken cancel)
    {
        Task signal;
        lock (gate)
        {
            long shippable = ShippableUnderLock();
            if (shippable > length || Completed && sealedAt < 0) return Task.CompletedTask;
            // Complete but sealed short of it (a held copy being torn down): it never grows again.
            if (Completed) return Task.Delay(timeout, cancel);
            signal = grown.Task;
        }
        return Task.WhenAny(signal, Task.Delay(timeout, cancel));
    }
}

/// <summary>The stream the recorder writes into: every write lands in the log buffer.</summary>
internal sealed class LogBufferStream(LogBuffer buffer) : Stream
{
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => buffer.Length;
    public override long Position { get => buffer.Length; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] destination, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] source, int offset, int count) => buffer.Append(source.AsSpan(offset, count));
    public override void Write(ReadOnlySpan<byte> source) => buffer.Append(source);
}

/// <summary>
/// The replica's side: log bytes arrive in order into a <see cref="LogBuffer"/> (a gap or an overlap is refused and
/// the primary resends from the replica's length); the replayer reads that same buffer as a stream that blocks
/// until more arrive or the stream is closed. The buffer is what a promoted replica continues as its own log.
/// </summary>
internal sealed class LiveLogStream(LogBuffer log) : Stream
{
    private readonly object gate = new();
    private long position = log.Start;
    private bool closed;
    private bool abandoned;

    public long Received => log.Length;

    /// <summary>How far the replayer has read (what this copy no longer needs for itself).</summary>
    public long ReadPosition
    {
        get
        {
            lock (gate) return position;
        }
    }

    /// <summary>Appends bytes that start at the offset; false (and nothing kept) unless offset is exactly what was received.</summary>
    public bool Offer(ulong offset, ReadOnlySpan<byte> bytes)
    {
        lock (gate)
        {
            if (closed || (long)offset != log.Length) return false;
            log.Append(bytes);
            Monitor.PulseAll(gate);
            return true;
        }
    }

    /// <summary>No more bytes will come; with abandon the reader also gets nothing more of what it has not read.</summary>
    public void Close(bool abandon)
    {
        lock (gate)
        {
            closed = true;
            abandoned |= abandon;
            Monitor.PulseAll(gate);
        }
    }

    public override int Read(byte[] destination, int offset, int count) => Read(destination.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        if (destination.IsEmpty) return 0;
        lock (gate)
        {
            while (!abandoned && position >= log.Length && !closed) Monitor.Wait(gate);
            if (abandoned || position >= log.Length) return 0;
            // One piece per read, as the primary sent it: a reader waiting for a chunk sees it as soon as it is whole.
            byte[] bytes = log.Read(position, destination.Length, onePiece: true);
            bytes.CopyTo(destination);
            position += bytes.Length;
            return bytes.Length;
        }
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
