using System.Buffers.Binary;
using System.IO.Hashing;

namespace P2PReplay.Replay;

/// <summary>
/// A running hash of everything the guest wrote to stdout, stderr and its client connections, in order. It is a chain
/// (each write is hashed with the previous value as the seed), so its whole state is one word plus a byte count and a
/// VM snapshot carries it (<see cref="Restore"/>).
/// </summary>
public sealed class OutputDigest
{
    public long Bytes { get; private set; }

    public ulong Value { get; private set; }

    /// <summary>Continues a chain from a snapshot's value and byte count.</summary>
    public void Restore(ulong value, long bytes)
    {
        Value = value;
        Bytes = bytes;
    }

    public void Add(int fd, ReadOnlySpan<byte> data)
    {
        Span<byte> tag = stackalloc byte[5];
        tag[0] = (byte)fd;
        BinaryPrimitives.WriteInt32LittleEndian(tag[1..], data.Length);
        Chain(tag, data);
    }

    /// <summary>Tags of what the guest does to a client connection (after the fd tags 1 and 2).</summary>
    public const byte NetSend = 0x10, NetShutdown = 0x11, NetClose = 0x12;

    /// <summary>Guest output to a client connection: bytes sent, or a shutdown or close (empty data).</summary>
    public void AddNetwork(byte tag, long connection, ReadOnlySpan<byte> data)
    {
        Span<byte> header = stackalloc byte[13];
        header[0] = tag;
        BinaryPrimitives.WriteInt64LittleEndian(header[1..], connection);
        BinaryPrimitives.WriteInt32LittleEndian(header[9..], data.Length);
        Chain(header, data);
    }

    private void Chain(ReadOnlySpan<byte> header, ReadOnlySpan<byte> data)
    {
        ulong seed = XxHash64.HashToUInt64(header, unchecked((long)Value));
        Value = XxHash64.HashToUInt64(data, unchecked((long)seed));
        Bytes += data.Length;
    }
}
