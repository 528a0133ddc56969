using System.Buffers.Binary;
using System.Text;

namespace P2PReplay.Cluster.Vms;

/// <summary>A VmLog channel message is malformed; the frame is dropped.</summary>
internal sealed class VmWireFormatException(string message) : Exception(message);

internal enum VmMessageType : byte
{
    /// <summary>Primary to replica: log bytes at an offset of the VM's log.</summary>
    LogData = 1,

    /// <summary>Primary to replica, every 100 ms: how far the primary is (and that it is alive).</summary>
    Heartbeat = 2,

    /// <summary>Replica to primary: how much of the log it holds and how far its replay is.</summary>
    Ack = 3,

    /// <summary>Primary to replica: take a checkpoint (a VM snapshot at the next exit) and send it back.</summary>
    CheckpointRequest = 4,

    /// <summary>
    /// A piece of a checkpoint: replica to primary (the one asked for), primary to replicas (to keep, and to start a
    /// new replica from). Offset: where the piece goes in the encoded snapshot; LogBytes: the snapshot's size; Exit:
    /// the log offset its replay continues from (the log before it is not needed with it).
    /// </summary>
    CheckpointData = 5,
}

/// <summary>One message of the VM log stream (ChannelKind.VmLog). Fields unused by a type are zero.</summary>
internal sealed record VmMessage(
    VmMessageType Type,
    string Vm,
    ulong Epoch,
    ulong Offset,
    long Exit,
    ulong LogBytes,
    byte State,
    ReadOnlyMemory<byte> Data)
{
    public const int MaxDataBytes = 1 << 20;
    public const int MaxNameBytes = 64;

    public static VmMessage LogData(string vm, ulong epoch, ulong offset, ReadOnlyMemory<byte> data) => new(VmMessageType.LogData, vm, epoch, offset, 0, 0, 0, data);

    /// <summary>Offset: the log before it is dropped at the primary (replicas may drop it too).</summary>
    public static VmMessage Heartbeat(string vm, ulong epoch, long exit, ulong logBytes, bool ended, ulong heldFrom = 0) =>
        new(VmMessageType.Heartbeat, vm, epoch, heldFrom, exit, logBytes, ended ? (byte)1 : (byte)0, ReadOnlyMemory<byte>.Empty);

    public static VmMessage CheckpointRequest(string vm, ulong epoch) => new(VmMessageType.CheckpointRequest, vm, epoch, 0, 0, 0, 0, ReadOnlyMemory<byte>.Empty);

    public static VmMessage CheckpointData(string vm, ulong epoch, long tailOffset, ulong pieceOffset, ulong totalBytes, ReadOnlyMemory<byte> piece) =>
        new(VmMessageType.CheckpointData, vm, epoch, pieceOffset, tailOffset, totalBytes, 0, piece);

    public static VmMessage Ack(string vm, ulong epoch, ulong receivedBytes, long replayedExit, ReplicaState state) =>
        new(VmMessageType.Ack, vm, epoch, receivedBytes, replayedExit, 0, (byte)state, ReadOnlyMemory<byte>.Empty);

    /// <summary>type u8 | name length u8 | name | epoch u64 | offset u64 | exit i64 | log bytes u64 | state u8 | data length u32 | data.</summary>
    public byte[] Encode()
    {
        byte[] name = Encoding.UTF8.GetBytes(Vm);
        if (name.Length is 0 or > MaxNameBytes) throw new ArgumentException("VM name must be 1-64 bytes");
        if (Data.Length > MaxDataBytes) throw new ArgumentException("VM log data over 1 MiB per message");
        byte[] bytes = new byte[1 + 1 + name.Length + 8 * 4 + 1 + 4 + Data.Length];
        var span = bytes.AsSpan();
        span[0] = (byte)Type;
        span[1] = (byte)name.Length;
        name.CopyTo(span[2..]);
        int at = 2 + name.Length;
        BinaryPrimitives.WriteUInt64LittleEndian(span[at..], Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 8)..], Offset);
        BinaryPrimitives.WriteInt64LittleEndian(span[(at + 16)..], Exit);
        BinaryPrimitives.WriteUInt64LittleEndian(span[(at + 24)..], LogBytes);
        span[at + 32] = State;
        BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 33)..], (uint)Data.Length);
        Data.Span.CopyTo(span[(at + 37)..]);
        return bytes;
    }

    public static VmMessage Decode(ReadOnlyMemory<byte> message)
    {
        var span = message.Span;
        if (span.Length < 2) throw new VmWireFormatException("VM message shorter than its header");
        var type = (VmMessageType)span[0];
        if (type is not (VmMessageType.LogData or VmMessageType.Heartbeat or VmMessageType.Ack or VmMessageType.CheckpointRequest or VmMessageType.CheckpointData)) throw new VmWireFormatException($"unknown VM message type {span[0]}");
        int nameLength = span[1];
        if (nameLength is 0 or > MaxNameBytes) throw new VmWireFormatException($"VM name length {nameLength} out of range");
        int fixedEnd = 2 + nameLength + 37;
        if (span.Length < fixedEnd) throw new VmWireFormatException("VM message truncated");
        string vm;
        try
        {
            vm = new UTF8Encoding(false, true).GetString(span.Slice(2, nameLength));
        }
        catch (DecoderFallbackException)
        {
            throw new VmWireFormatException("VM name is not UTF-8");
        }
        int at = 2 + nameLength;
        ulong epoch = BinaryPrimitives.ReadUInt64LittleEndian(span[at..]);
        ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 8)..]);
        long exit = BinaryPrimitives.ReadInt64LittleEndian(span[(at + 16)..]);
        ulong logBytes = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 24)..]);
        byte state = span[at + 32];
        uint dataLength = BinaryPrimitives.ReadUInt32LittleEndian(span[(at + 33)..]);
        if (dataLength > MaxDataBytes || dataLength != span.Length - fixedEnd) throw new VmWireFormatException($"VM message data length {dataLength} does not match the frame");
        if (type is not (VmMessageType.LogData or VmMessageType.CheckpointData) && dataLength != 0) throw new VmWireFormatException("only log and checkpoint data messages carry data");
        if (type == VmMessageType.CheckpointData && (logBytes > Checkpoint.MaxBytes || offset >= logBytes || offset + dataLength > logBytes || dataLength == 0))
            throw new VmWireFormatException("checkpoint piece out of range");
        if (exit < 0) throw new VmWireFormatException("negative exit count");
        return new VmMessage(type, vm, epoch, offset, exit, logBytes, state, message[fixedEnd..]);
    }
}

/// <summary>A replica's progress as it reports it.</summary>
internal enum ReplicaState : byte
{
    Waiting = 0,
    Replaying = 1,
    Finished = 2,
    Diverged = 3,
    Failed = 4,
}
