using System.Buffers.Binary;
using System.Security.Cryptography;

namespace P2PReplay.Cluster.Vms;

/// <summary>A checkpoint is malformed or does not verify.</summary>
internal sealed class CheckpointFormatException(string message) : Exception(message);

/// <summary>
/// A checkpoint of a replicated VM: a replica's VM snapshot (see Vmm/Snapshots) plus what that replica knew of the
/// client connections, at the exit where its replay continues from log offset <see cref="TailOffset"/>. With it, the
/// log before that offset is not needed: a new replica starts from it and the log's tail.
/// <para>Encoded: "P2PCKPT1" | tail offset i64 | snapshot length u32 | connections length u32 | SHA-256 of what follows | snapshot | connections.</para>
/// </summary>
internal sealed class Checkpoint
{
    public const long MaxBytes = 1L << 30;
    private const int HeaderBytes = 8 + 8 + 4 + 4 + 32;
    private static ReadOnlySpan<byte> Magic => "P2PCKPT1"u8;

    private Checkpoint(long tailOffset, byte[] encoded, long exits)
    {
        TailOffset = tailOffset;
        Encoded = encoded;
        Exits = exits;
    }

    public long TailOffset { get; }
    public byte[] Encoded { get; }
    /// <summary>The exit count of the VM at the checkpoint (for logs and views; not checked).</summary>
    public long Exits { get; }

    public static Checkpoint Create(long tailOffset, long exits, byte[] snapshot, byte[] connections)
    {
        byte[] encoded = new byte[HeaderBytes + snapshot.Length + connections.Length];
        var span = encoded.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], tailOffset);
        BinaryPrimitives.WriteInt32LittleEndian(span[16..], snapshot.Length);
        BinaryPrimitives.WriteInt32LittleEndian(span[20..], connections.Length);
        snapshot.CopyTo(span[HeaderBytes..]);
        connections.CopyTo(span[(HeaderBytes + snapshot.Length)..]);
        SHA256.HashData(span[HeaderBytes..], span[24..HeaderBytes]);
        return new Checkpoint(tailOffset, encoded, exits);
    }

    /// <summary>Checks the framing and the hash; the snapshot inside is decoded (and checked again) by its user.</summary>
    public static Checkpoint Parse(byte[] encoded, long exits = 0)
    {
        var span = encoded.AsSpan();
        if (span.Length < HeaderBytes || !span[..8].SequenceEqual(Magic)) throw new CheckpointFormatException("not a checkpoint");
        long tail = BinaryPrimitives.ReadInt64LittleEndian(span[8..]);
        int snapshot = BinaryPrimitives.ReadInt32LittleEndian(span[16..]);
        int connections = BinaryPrimitives.ReadInt32LittleEndian(span[20..]);
        if (tail < 0 || snapshot <= 0 || connections < 0 || (long)HeaderBytes + snapshot + connections != span.Length)
            throw new CheckpointFormatException("checkpoint lengths do not match its size");
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(span[HeaderBytes..], hash);
        if (!hash.SequenceEqual(span[24..HeaderBytes])) throw new CheckpointFormatException("checkpoint hash mismatch (corrupt)");
        return new Checkpoint(tail, encoded, exits);
    }

    public ReadOnlySpan<byte> Snapshot
    {
        get
        {
            int length = BinaryPrimitives.ReadInt32LittleEndian(Encoded.AsSpan(16));
            return Encoded.AsSpan(HeaderBytes, length);
        }
    }

    private const int PieceBytes = 512 * 1024;

    /// <summary>Sends the checkpoint in pieces over the VM log channel; false when a piece could not be sent.</summary>
    public async Task<bool> SendAsync(Transport.PeerNetwork network, string address, string vm, ulong epoch, CancellationToken cancel)
    {
        for (int at = 0; at < Encoded.Length; at += PieceBytes)
        {
            var piece = Encoded.AsMemory(at, Math.Min(PieceBytes, Encoded.Length - at));
            var message = VmMessage.CheckpointData(vm, epoch, TailOffset, (ulong)at, (ulong)Encoded.Length, piece);
            if (!await network.SendAsync(address, Transport.ChannelKind.VmLog, message.Encode(), compress: false, cancel).ConfigureAwait(false)) return false;
        }
        return true;
    }

    public byte[] Connections
    {
        get
        {
            int snapshot = BinaryPrimitives.ReadInt32LittleEndian(Encoded.AsSpan(16));
            return Encoded.AsSpan(HeaderBytes + snapshot).ToArray();
        }
    }
}

/// <summary>
/// Pieces of one checkpoint arriving in order over one connection; a piece of another checkpoint (other tail offset
/// or size) starting at 0 begins anew. Not thread-safe: its owner locks.
/// </summary>
internal sealed class CheckpointAssembly
{
    private byte[]? buffer;
    private long tail = -1;
    private long received;

    /// <summary>Takes a piece; returns the whole checkpoint once the last piece arrived and it verifies.</summary>
    public Checkpoint? Offer(long tailOffset, ulong pieceOffset, ulong totalBytes, ReadOnlySpan<byte> piece)
    {
        if (totalBytes == 0 || totalBytes > (ulong)Checkpoint.MaxBytes || (ulong)piece.Length > totalBytes - Math.Min(pieceOffset, totalBytes)) return null;
        if (buffer is null || tail != tailOffset || (ulong)buffer.Length != totalBytes)
        {
            if (pieceOffset != 0) return null;
            buffer = new byte[totalBytes];
            tail = tailOffset;
            received = 0;
        }
        if ((long)pieceOffset != received)
        {
            if (pieceOffset != 0) return null;
            received = 0;
        }
        piece.CopyTo(buffer.AsSpan((int)received));
        received += piece.Length;
        if (received < buffer.Length) return null;
        byte[] whole = buffer;
        buffer = null;
        tail = -1;
        var checkpoint = Checkpoint.Parse(whole);
        return checkpoint.TailOffset == tailOffset ? checkpoint : throw new CheckpointFormatException("checkpoint tail offset does not match its pieces'");
    }
}
