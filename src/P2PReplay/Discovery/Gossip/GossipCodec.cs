using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace P2PReplay.Discovery.Gossip;

/// <summary>
/// Versioned binary wire format. A packet is: version byte, sender node id, sender address, message count,
/// then per message a type byte, a u32 body length and the body. Integers are little-endian, strings are a
/// u8 length plus strict UTF-8. Decoding checks every length, count, enum and limit and throws only
/// <see cref="GossipFormatException"/>; encoding refuses values the decoder would reject.
/// </summary>
public static class GossipCodec
{
    public const byte Version = 1;
    /// <summary>Hard ceiling for any packet (a push-pull of a few thousand members fits).</summary>
    public const int MaxPacketBytes = 1 << 20;
    public const int MaxMessagesPerPacket = 255;
    public const int MaxPushPullEntries = 4096;
    public const int MaxNodeIdLength = 64;
    public const int MaxAddressLength = 255;
    public const int MaxSiteLength = 64;
    public const int MaxStateLength = 64;
    public const int MaxCores = 1 << 20;
    /// <summary>Bytes a message costs beyond its body: type byte plus u32 length.</summary>
    public const int MessageOverhead = 5;

    private enum MessageType : byte
    {
        Ping = 1,
        IndirectPing = 2,
        Ack = 3,
        Nack = 4,
        Alive = 5,
        Suspect = 6,
        Dead = 7,
        Left = 8,
        PushPull = 9,
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Throws ArgumentException when a member cannot be put on the wire.</summary>
    public static void ValidateMember(MemberInfo member)
    {
        ArgumentNullException.ThrowIfNull(member);
        CheckString(member.NodeId, 1, MaxNodeIdLength, nameof(member.NodeId));
        CheckString(member.Address, 1, MaxAddressLength, nameof(member.Address));
        CheckString(member.Site, 0, MaxSiteLength, nameof(member.Site));
        CheckString(member.State, 0, MaxStateLength, nameof(member.State));
        if (member.Cores is < 0 or > MaxCores) throw new ArgumentException($"Cores must be within 0..{MaxCores}", nameof(member));
        if (member.MemoryBytes < 0) throw new ArgumentException("MemoryBytes must not be negative", nameof(member));
    }

    /// <summary>Encodes one message with its type and length prefix, ready to be placed into packets.</summary>
    public static byte[] EncodeMessage(GossipMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var body = new ArrayBufferWriter<byte>(64);
        MessageType type = WriteBody(body, message);
        if (body.WrittenCount > MaxPacketBytes) throw new ArgumentException("message too large", nameof(message));
        var result = new byte[MessageOverhead + body.WrittenCount];
        result[0] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(1), (uint)body.WrittenCount);
        body.WrittenSpan.CopyTo(result.AsSpan(MessageOverhead));
        return result;
    }

    /// <summary>Size of the packet header for this sender (what precedes the first message).</summary>
    public static int HeaderSize(string senderNodeId, string senderAddress) =>
        1 + 1 + StrictUtf8.GetByteCount(senderNodeId) + 1 + StrictUtf8.GetByteCount(senderAddress) + 1;

    /// <summary>Builds a compound packet from messages encoded by <see cref="EncodeMessage"/>.</summary>
    public static byte[] EncodePacket(string senderNodeId, string senderAddress, IReadOnlyList<byte[]> encodedMessages)
    {
        ArgumentNullException.ThrowIfNull(encodedMessages);
        CheckString(senderNodeId, 1, MaxNodeIdLength, nameof(senderNodeId));
        CheckString(senderAddress, 1, MaxAddressLength, nameof(senderAddress));
        if (encodedMessages.Count is < 1 or > MaxMessagesPerPacket) throw new ArgumentException($"a packet carries 1..{MaxMessagesPerPacket} messages", nameof(encodedMessages));
        int size = HeaderSize(senderNodeId, senderAddress);
        foreach (byte[] m in encodedMessages) size += m.Length;
        if (size > MaxPacketBytes) throw new ArgumentException("packet too large", nameof(encodedMessages));
        var writer = new ArrayBufferWriter<byte>(size);
        WriteByte(writer, Version);
        WriteString(writer, senderNodeId);
        WriteString(writer, senderAddress);
        WriteByte(writer, (byte)encodedMessages.Count);
        foreach (byte[] m in encodedMessages) writer.Write(m);
        return writer.WrittenSpan.ToArray();
    }

    public static byte[] Encode(GossipPacket packet)
    {
        ArgumentNullException.ThrowIfNull(packet);
        return EncodePacket(packet.SenderNodeId, packet.SenderAddress, packet.Messages.Select(EncodeMessage).ToArray());
    }

    public static GossipPacket Decode(ReadOnlySpan<byte> packet)
    {
        if (packet.Length > MaxPacketBytes) throw new GossipFormatException($"packet of {packet.Length} bytes exceeds {MaxPacketBytes}");
        var reader = new Reader(packet);
        byte version = reader.Byte();
        if (version != Version) throw new GossipFormatException($"unsupported gossip version {version}");
        string senderId = reader.String(1, MaxNodeIdLength);
        string senderAddress = reader.String(1, MaxAddressLength);
        int count = reader.Byte();
        if (count == 0) throw new GossipFormatException("packet without messages");
        var messages = new List<GossipMessage>(count);
        for (int i = 0; i < count; i++)
        {
            byte type = reader.Byte();
            uint length = reader.UInt32();
            if (length > (uint)reader.Remaining) throw new GossipFormatException($"message length {length} exceeds the {reader.Remaining} bytes left");
            var body = new Reader(reader.Take((int)length));
            messages.Add(ReadBody(ref body, type));
            if (body.Remaining != 0) throw new GossipFormatException($"{body.Remaining} trailing bytes in message of type {type}");
        }
        if (reader.Remaining != 0) throw new GossipFormatException($"{reader.Remaining} trailing bytes after the last message");
        return new GossipPacket(senderId, senderAddress, messages);
    }

    private static MessageType WriteBody(ArrayBufferWriter<byte> w, GossipMessage message)
    {
        switch (message)
        {
            case PingMessage ping:
                WriteUInt32(w, ping.Sequence);
                WriteCheckedString(w, ping.TargetNodeId, 1, MaxNodeIdLength);
                return MessageType.Ping;
            case IndirectPingMessage req:
                WriteUInt32(w, req.Sequence);
                WriteCheckedString(w, req.TargetNodeId, 1, MaxNodeIdLength);
                WriteCheckedString(w, req.TargetAddress, 1, MaxAddressLength);
                WriteByte(w, req.WantNack ? (byte)1 : (byte)0);
                return MessageType.IndirectPing;
            case AckMessage ack:
                WriteUInt32(w, ack.Sequence);
                return MessageType.Ack;
            case NackMessage nack:
                WriteUInt32(w, nack.Sequence);
                return MessageType.Nack;
            case AliveMessage alive:
                WriteUInt64(w, alive.Incarnation);
                WriteMember(w, alive.Member);
                return MessageType.Alive;
            case SuspectMessage suspect:
                WriteUInt64(w, suspect.Incarnation);
                WriteCheckedString(w, suspect.NodeId, 1, MaxNodeIdLength);
                WriteCheckedString(w, suspect.FromNodeId, 1, MaxNodeIdLength);
                return MessageType.Suspect;
            case DeadMessage dead:
                WriteUInt64(w, dead.Incarnation);
                WriteCheckedString(w, dead.NodeId, 1, MaxNodeIdLength);
                WriteCheckedString(w, dead.FromNodeId, 1, MaxNodeIdLength);
                return MessageType.Dead;
            case LeftMessage left:
                WriteUInt64(w, left.Incarnation);
                WriteCheckedString(w, left.NodeId, 1, MaxNodeIdLength);
                return MessageType.Left;
            case PushPullMessage pushPull:
                if (pushPull.Entries.Count > MaxPushPullEntries) throw new ArgumentException($"push-pull carries at most {MaxPushPullEntries} members", nameof(message));
                WriteByte(w, (byte)((pushPull.IsReply ? 1 : 0) | (pushPull.IsJoin ? 2 : 0)));
                WriteUInt16(w, (ushort)pushPull.Entries.Count);
                foreach (PushPullEntry entry in pushPull.Entries)
                {
                    if (!Enum.IsDefined(entry.Status)) throw new ArgumentException("unknown member status", nameof(message));
                    WriteByte(w, (byte)entry.Status);
                    WriteUInt64(w, entry.Incarnation);
                    WriteMember(w, entry.Member);
                }
                return MessageType.PushPull;
            default:
                throw new ArgumentException($"unknown gossip message {message.GetType().Name}", nameof(message));
        }
    }

    private static GossipMessage ReadBody(ref Reader r, byte type)
    {
        switch ((MessageType)type)
        {
            case MessageType.Ping:
                return new PingMessage(r.UInt32(), r.String(1, MaxNodeIdLength));
            case MessageType.IndirectPing:
                return new IndirectPingMessage(r.UInt32(), r.String(1, MaxNodeIdLength), r.String(1, MaxAddressLength), r.Bool());
            case MessageType.Ack:
                return new AckMessage(r.UInt32());
            case MessageType.Nack:
                return new NackMessage(r.UInt32());
            case MessageType.Alive:
                return new AliveMessage(r.UInt64(), ReadMember(ref r));
            case MessageType.Suspect:
                return new SuspectMessage(r.UInt64(), r.String(1, MaxNodeIdLength), r.String(1, MaxNodeIdLength));
            case MessageType.Dead:
                return new DeadMessage(r.UInt64(), r.String(1, MaxNodeIdLength), r.String(1, MaxNodeIdLength));
            case MessageType.Left:
                return new LeftMessage(r.UInt64(), r.String(1, MaxNodeIdLength));
            case MessageType.PushPull:
                byte flags = r.Byte();
                if ((flags & ~3) != 0) throw new GossipFormatException($"unknown push-pull flags 0x{flags:x2}");
                int count = r.UInt16();
                // Smallest entry: status, incarnation, member with 1-byte id and address and empty strings.
                const int minEntry = 1 + 8 + (2 + 2 + 1 + 4 + 8 + 1);
                if (count > MaxPushPullEntries) throw new GossipFormatException($"push-pull with {count} members exceeds {MaxPushPullEntries}");
                if (count * minEntry > r.Remaining) throw new GossipFormatException($"push-pull claims {count} members but only {r.Remaining} bytes remain");
                var entries = new PushPullEntry[count];
                for (int i = 0; i < count; i++)
                {
                    byte status = r.Byte();
                    if (status > (byte)MemberStatus.Left) throw new GossipFormatException($"unknown member status {status}");
                    ulong incarnation = r.UInt64();
                    entries[i] = new PushPullEntry(ReadMember(ref r), (MemberStatus)status, incarnation);
                }
                return new PushPullMessage((flags & 1) != 0, (flags & 2) != 0, entries);
            default:
                throw new GossipFormatException($"unknown message type {type}");
        }
    }

    private static void WriteMember(ArrayBufferWriter<byte> w, MemberInfo member)
    {
        try
        {
            ValidateMember(member);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"member cannot be encoded: {e.Message}", nameof(member), e);
        }
        WriteString(w, member.NodeId);
        WriteString(w, member.Address);
        WriteString(w, member.Site);
        WriteUInt32(w, (uint)member.Cores);
        WriteUInt64(w, (ulong)member.MemoryBytes);
        WriteString(w, member.State);
    }

    private static MemberInfo ReadMember(ref Reader r)
    {
        string nodeId = r.String(1, MaxNodeIdLength);
        string address = r.String(1, MaxAddressLength);
        string site = r.String(0, MaxSiteLength);
        uint cores = r.UInt32();
        if (cores > MaxCores) throw new GossipFormatException($"cores {cores} exceeds {MaxCores}");
        ulong memory = r.UInt64();
        if (memory > long.MaxValue) throw new GossipFormatException("memory size out of range");
        string state = r.String(0, MaxStateLength);
        return new MemberInfo(nodeId, address, site, (int)cores, (long)memory, state);
    }

    private static void CheckString(string value, int minBytes, int maxBytes, string name)
    {
        ArgumentNullException.ThrowIfNull(value, name);
        int bytes;
        try
        {
            bytes = StrictUtf8.GetByteCount(value);
        }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException($"{name} is not valid Unicode", name, e);
        }
        if (bytes < minBytes || bytes > maxBytes) throw new ArgumentException($"{name} must be {minBytes}..{maxBytes} UTF-8 bytes, is {bytes}", name);
    }

    private static void WriteCheckedString(ArrayBufferWriter<byte> w, string value, int minBytes, int maxBytes)
    {
        CheckString(value, minBytes, maxBytes, nameof(value));
        WriteString(w, value);
    }

    private static void WriteString(ArrayBufferWriter<byte> w, string value)
    {
        int length = StrictUtf8.GetByteCount(value);
        WriteByte(w, (byte)length);
        StrictUtf8.GetBytes(value, w.GetSpan(length));
        w.Advance(length);
    }

    private static void WriteByte(ArrayBufferWriter<byte> w, byte value)
    {
        w.GetSpan(1)[0] = value;
        w.Advance(1);
    }

    private static void WriteUInt16(ArrayBufferWriter<byte> w, ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(w.GetSpan(2), value);
        w.Advance(2);
    }

    private static void WriteUInt32(ArrayBufferWriter<byte> w, uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(w.GetSpan(4), value);
        w.Advance(4);
    }

    private static void WriteUInt64(ArrayBufferWriter<byte> w, ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(w.GetSpan(8), value);
        w.Advance(8);
    }

    /// <summary>Bounds-checked cursor; every read that would run past the end throws GossipFormatException.</summary>
    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _rest = data;

        public readonly int Remaining => _rest.Length;

        public ReadOnlySpan<byte> Take(int count)
        {
            if (count < 0 || count > _rest.Length) throw new GossipFormatException($"truncated: needed {count} bytes, {_rest.Length} left");
            ReadOnlySpan<byte> taken = _rest[..count];
            _rest = _rest[count..];
            return taken;
        }

        public byte Byte() => Take(1)[0];

        public bool Bool() => Byte() switch
        {
            0 => false,
            1 => true,
            byte other => throw new GossipFormatException($"boolean byte {other}"),
        };

        public ushort UInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

        public uint UInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

        public ulong UInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

        public string String(int minBytes, int maxBytes)
        {
            int length = Byte();
            if (length < minBytes || length > maxBytes) throw new GossipFormatException($"string of {length} bytes outside {minBytes}..{maxBytes}");
            ReadOnlySpan<byte> bytes = Take(length);
            try
            {
                return StrictUtf8.GetString(bytes);
            }
            catch (DecoderFallbackException e)
            {
                throw new GossipFormatException("string is not valid UTF-8", e);
            }
        }
    }
}
