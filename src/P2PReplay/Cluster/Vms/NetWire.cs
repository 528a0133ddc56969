using System.Buffers.Binary;
using System.Text;

namespace P2PReplay.Cluster.Vms;

/// <summary>
/// Messages between a daemon's front end (which holds a client's TCP connection) and the VM's current primary
/// (ChannelKind.VmNet). Both directions carry byte offsets into the connection's two streams, so either side can
/// resend from where the other says it is, and a new primary after a failover resumes without loss or duplicates.
/// </summary>
internal enum NetMessageType : byte
{
    /// <summary>Front end → primary: a client connected (or, again after a failover, still is). Offset: output bytes the
    /// front end has delivered to the client; Aux: input bytes it no longer holds (committed); Port: the guest port. Data: the client's address (4 or 16
    /// bytes) and port (u16).</summary>
    Open = 1,

    /// <summary>Front end → primary: client bytes at Offset of the client's stream.</summary>
    Input = 2,

    /// <summary>Front end → primary: the client closed its sending side after Offset bytes.</summary>
    InputEnd = 3,

    /// <summary>Front end → primary: output delivered to the client up to Offset (Aux 1: the end too; Aux 2: the client is gone, discard).</summary>
    OutputAck = 4,

    /// <summary>Primary → front end: input held up to Offset, committed (logged at every replica) up to Aux. Port bits:
    /// 1 resend from Offset now (an answer to Open); 2 the end of input is held.</summary>
    State = 5,

    /// <summary>Primary → front end: released guest bytes at Offset of the guest's stream.</summary>
    Output = 6,

    /// <summary>Primary → front end: the guest shut down its sending side (Aux 1) or closed (Aux 2) after Offset bytes.</summary>
    OutputEnd = 7,

    /// <summary>Primary → front end: this connection cannot be resumed (unknown to the VM): reset the client.</summary>
    Reset = 8,
}

internal sealed class NetWireFormatException(string message) : Exception(message);

/// <summary>One VmNet message. Layout: type u8 | name length u8 | name | epoch u64 | connection i64 | offset u64 | aux
/// u64 | port u16 | data length u32 | data.</summary>
internal sealed record NetMessage(NetMessageType Type, string Vm, ulong Epoch, long Connection, ulong Offset, ulong Aux, int Port, ReadOnlyMemory<byte> Data)
{
    public const int MaxDataBytes = 256 * 1024;
    private const int FixedBytes = 8 + 8 + 8 + 8 + 2 + 4;

    public byte[] Encode()
    {
        byte[] name = Encoding.UTF8.GetBytes(Vm);
        if (name.Length is 0 or > VmMessage.MaxNameBytes) throw new ArgumentException("VM name must be 1-64 bytes");
        if (Data.Length > MaxDataBytes) throw new ArgumentException("VmNet data over 256 KiB per message");
        if (Port is < 0 or > 65535) throw new ArgumentException("port out of range");
        byte[] bytes = new byte[2 + name.Length + FixedBytes + Data.Length];
        var span = bytes.AsSpan();
        span[0] = (byte)Type;
        span[1] = (byte)name.Length;
        name.CopyTo(span[2..]);
        int at = 2 + name.Length;
        BinaryPrimitives.WriteUInt64LittleEndian(span[at..], Epoch);
        BinaryPrimitives.WriteInt64LittleEndian(span[(at + 8)..], Connection);
        BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 16)..], Offset);
        BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 24)..], Aux);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 32)..], (ushort)Port);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 34)..], (uint)Data.Length);
        Data.Span.CopyTo(span[(at + FixedBytes)..]);
        return bytes;
    }

    public static NetMessage Decode(ReadOnlyMemory<byte> message)
    {
        var span = message.Span;
        if (span.Length < 2) throw new NetWireFormatException("VmNet message shorter than its header");
        var type = (NetMessageType)span[0];
        if (type is < NetMessageType.Open or > NetMessageType.Reset) throw new NetWireFormatException($"unknown VmNet message type {span[0]}");
        int nameLength = span[1];
        if (nameLength is 0 or > VmMessage.MaxNameBytes) throw new NetWireFormatException($"VM name length {nameLength} out of range");
        int fixedEnd = 2 + nameLength + FixedBytes;
        if (span.Length < fixedEnd) throw new NetWireFormatException("VmNet message truncated");
        string vm;
        try
        {
            vm = new UTF8Encoding(false, true).GetString(span.Slice(2, nameLength));
        }
        catch (DecoderFallbackException)
        {
            throw new NetWireFormatException("VM name is not UTF-8");
        }
        int at = 2 + nameLength;
        ulong epoch = BinaryPrimitives.ReadUInt64LittleEndian(span[at..]);
        long connection = BinaryPrimitives.ReadInt64LittleEndian(span[(at + 8)..]);
        ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 16)..]);
        ulong aux = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 24)..]);
        int port = BinaryPrimitives.ReadUInt16LittleEndian(span[(at + 32)..]);
        uint dataLength = BinaryPrimitives.ReadUInt32LittleEndian(span[(at + 34)..]);
        if (dataLength > MaxDataBytes || dataLength != span.Length - fixedEnd) throw new NetWireFormatException($"VmNet data length {dataLength} does not match the frame");
        // Connection ids are the front ends' (positive); negative ids are the guest's own loopback connections.
        if (connection <= 0) throw new NetWireFormatException($"connection id {connection} is not positive");
        if (offset > long.MaxValue || aux > long.MaxValue) throw new NetWireFormatException("offset out of range");
        if (type is not (NetMessageType.Open or NetMessageType.Input or NetMessageType.Output) && dataLength != 0)
            throw new NetWireFormatException($"{type} carries no data");
        if (type == NetMessageType.Open && dataLength is not (6 or 18)) throw new NetWireFormatException("Open needs a 4- or 16-byte peer address and a port");
        return new NetMessage(type, vm, epoch, connection, offset, aux, port, message[fixedEnd..]);
    }
}
