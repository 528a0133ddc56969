namespace P2PReplay.Cluster.Vms;

/// <summary>
/// The held part of a byte stream: bytes from <see cref="Start"/> to <see cref="End"/> (absolute stream offsets).
/// Appends at the end, drops from the start. Not thread-safe: its owner locks.
/// </summary>
internal sealed class ByteWindow
{
    private byte[] buffer = new byte[4096];
    private int head;
    private int count;

    public long Start { get; private set; }

    public long End => Start + count;

    public int Count => count;

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return;
        if (head + count + bytes.Length > buffer.Length)
        {
            // Compact first; grow when the held bytes alone do not fit.
            int needed = count + bytes.Length;
            byte[] target = needed > buffer.Length ? new byte[Math.Max(needed, buffer.Length * 2)] : buffer;
            Buffer.BlockCopy(buffer, head, target, 0, count);
            buffer = target;
            head = 0;
        }
        bytes.CopyTo(buffer.AsSpan(head + count));
        count += bytes.Length;
    }

    /// <summary>Forgets everything before <paramref name="offset"/> (clamped to what is held).</summary>
    public void DropBefore(long offset)
    {
        long drop = Math.Clamp(offset - Start, 0, count);
        head += (int)drop;
        count -= (int)drop;
        Start += drop;
        if (count == 0) head = 0;
    }

    /// <summary>Starts an empty window at <paramref name="offset"/> (what came before is not held).</summary>
    public void Reset(long offset)
    {
        head = 0;
        count = 0;
        Start = offset;
    }

    /// <summary>Up to <paramref name="max"/> bytes from <paramref name="offset"/> (which must be held).</summary>
    public byte[] Read(long offset, int max)
    {
        if (offset < Start || offset > End) throw new ArgumentOutOfRangeException(nameof(offset), $"offset {offset} not within [{Start}, {End}]");
        int length = (int)Math.Min(max, End - offset);
        return buffer.AsSpan(head + (int)(offset - Start), length).ToArray();
    }
}
