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
}
