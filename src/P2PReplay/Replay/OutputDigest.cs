using System.IO.Hashing;

namespace P2PReplay.Replay;

/// <summary>A running hash of everything the guest wrote to stdout and stderr, in order.</summary>
public sealed class OutputDigest
{
    private readonly XxHash64 _hash = new();
    private readonly byte[] _tag = new byte[5];

    public long Bytes { get; private set; }

    public ulong Value => _hash.GetCurrentHashAsUInt64();

    public void Add(int fd, ReadOnlySpan<byte> data)
    {
        _tag[0] = (byte)fd;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(_tag.AsSpan(1), data.Length);
        _hash.Append(_tag);
        _hash.Append(data);
        Bytes += data.Length;
    }

    /// <summary>Tags of what the guest does to a client connection (after the fd tags 1 and 2).</summary>
    public const byte NetSend = 0x10, NetShutdown = 0x11, NetClose = 0x12;

    /// <summary>Guest output to a client connection: bytes sent, or a shutdown or close (empty data).</summary>
    public void AddNetwork(byte tag, long connection, ReadOnlySpan<byte> data)
    {
        Span<byte> header = stackalloc byte[13];
        header[0] = tag;
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(header[1..], connection);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header[9..], data.Length);
        _hash.Append(header);
        _hash.Append(data);
        Bytes += data.Length;
    }
}
