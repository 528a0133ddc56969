using System.Buffers.Binary;

namespace P2PReplay.Replay;

/// <summary>Appends little-endian integers, LEB128 varints and length-prefixed bytes to a growing buffer.</summary>
public sealed class ByteWriter
{
    private byte[] _buffer = new byte[64];

    public int Length { get; private set; }

    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, Length);

    public void Clear() => Length = 0;

    public void U8(byte value) => Reserve(1)[0] = value;

    public void U64(ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Reserve(8), value);

    public void I64(long value) => BinaryPrimitives.WriteInt64LittleEndian(Reserve(8), value);

    public void VarU(ulong value)
    {
        while (value >= 0x80)
        {
            U8((byte)(value | 0x80));
            value >>= 7;
        }
        U8((byte)value);
    }

    /// <summary>Zigzag-encoded signed varint.</summary>
    public void VarI(long value) => VarU((ulong)((value << 1) ^ (value >> 63)));

    public void Bytes(ReadOnlySpan<byte> bytes)
    {
        VarU((ulong)bytes.Length);
        bytes.CopyTo(Reserve(bytes.Length));
    }

    private Span<byte> Reserve(int count)
    {
        if (Length + count > _buffer.Length) Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, Length + count));
        var span = _buffer.AsSpan(Length, count);
        Length += count;
        return span;
    }
}

/// <summary>Reads what <see cref="ByteWriter"/> wrote; any overrun or malformed varint is a <see cref="FormatException"/>.</summary>
public ref struct ByteReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _position;

    public readonly bool AtEnd => _position == _data.Length;

    public byte U8() => Take(1)[0];

    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    public ulong VarU()
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = U8();
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new FormatException("varint longer than 64 bits");
    }

    public long VarI()
    {
        ulong raw = VarU();
        return (long)(raw >> 1) ^ -(long)(raw & 1);
    }

    public ReadOnlySpan<byte> Bytes()
    {
        ulong length = VarU();
        if (length > (ulong)(_data.Length - _position)) throw new FormatException("byte string runs past the record");
        return Take((int)length);
    }

    public int Int32(int max)
    {
        ulong value = VarU();
        if (value > (ulong)max) throw new FormatException($"value {value} exceeds {max}");
        return (int)value;
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > _data.Length - _position) throw new FormatException("record ends early");
        var span = _data.Slice(_position, count);
        _position += count;
        return span;
    }
}
