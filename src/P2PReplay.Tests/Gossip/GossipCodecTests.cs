using P2PReplay.Discovery.Gossip;

namespace P2PReplay.Tests.Gossip;

public sealed class GossipCodecTests
{
    private static readonly MemberInfo Sample = new("00000000deadbeef", "192.168.1.20:7946", "home", 16, 64L << 30, "idle");

    internal static GossipPacket EveryMessage() => new("00000000cafebabe", "10.0.0.1:7946",
    [
        new PingMessage(7, Sample.NodeId),
        new IndirectPingMessage(8, Sample.NodeId, Sample.Address, WantNack: true),
        new AckMessage(9),
        new NackMessage(uint.MaxValue),
        new AliveMessage(3, Sample),
        new SuspectMessage(4, Sample.NodeId, "00000000cafebabe"),
        new DeadMessage(5, Sample.NodeId, "00000000cafebabe"),
        new LeftMessage(ulong.MaxValue, Sample.NodeId),
        new PushPullMessage(IsReply: true, IsJoin: false,
        [
            new PushPullEntry(Sample, MemberStatus.Suspect, 12),
            new PushPullEntry(Sample with { NodeId = "x", Site = "", State = "" , Cores = 0, MemoryBytes = 0 }, MemberStatus.Left, 0),
        ]),
    ]);

    [Fact]
    public void Every_message_round_trips()
    {
        GossipPacket packet = EveryMessage();
        GossipPacket decoded = GossipCodec.Decode(GossipCodec.Encode(packet));
        Assert.Equal(packet.SenderNodeId, decoded.SenderNodeId);
        Assert.Equal(packet.SenderAddress, decoded.SenderAddress);
        Assert.Equal(packet.Messages.Count, decoded.Messages.Count);
        for (int i = 0; i < packet.Messages.Count; i++)
        {
            if (packet.Messages[i] is PushPullMessage expected)
            {
                var actual = Assert.IsType<PushPullMessage>(decoded.Messages[i]);
                Assert.Equal(expected.IsReply, actual.IsReply);
                Assert.Equal(expected.IsJoin, actual.IsJoin);
                Assert.Equal(expected.Entries, actual.Entries);
            }
            else
            {
                Assert.Equal(packet.Messages[i], decoded.Messages[i]);
            }
        }
    }

    [Fact]
    public void Strict_validation_rejects_bad_fields()
    {
        byte[] good = GossipCodec.Encode(new GossipPacket("a", "b:1", [new AckMessage(1)]));
        GossipCodec.Decode(good);
        Assert.Throws<GossipFormatException>(() => GossipCodec.Decode([]));
        Assert.Throws<GossipFormatException>(() => GossipCodec.Decode(Mutate(good, 0, 2)));   // version
        Assert.Throws<GossipFormatException>(() => GossipCodec.Decode(Mutate(good, 1, 0)));   // empty node id
        Assert.Throws<GossipFormatException>(() => GossipCodec.Decode(Mutate(good, 7, 0)));   // no messages
        Assert.Throws<GossipFormatException>(() => GossipCodec.Decode(Mutate(good, 8, 99)));  // unknown type
        Assert.Throws<GossipFormatException>(() => GossipCodec.Decode(Mutate(good, 9, 5)));   // body longer than packet
        Assert.Throws<GossipFormatException>(() => GossipCodec.Decode([.. good, 0]));         // trailing byte
        Assert.Throws<GossipFormatException>(() => GossipCodec.Decode(GossipCodec.Encode(new GossipPacket("a", "b:1", [new PingMessage(1, "\u00ff")]))
            .Select((b, i) => i == 18 ? (byte)0xff : b).ToArray()));                         // invalid UTF-8
        Assert.Throws<ArgumentException>(() => GossipCodec.Encode(new GossipPacket("a", "b:1", [new AliveMessage(1, Sample with { Cores = -1 })])));
        Assert.Throws<ArgumentException>(() => GossipCodec.Encode(new GossipPacket(new string('x', 65), "b:1", [new AckMessage(1)])));
    }

    [Fact]
    public void Fuzzed_packets_only_ever_throw_GossipFormatException()
    {
        var random = new Random(1234);
        byte[][] seeds =
        [
            GossipCodec.Encode(EveryMessage()),
            GossipCodec.Encode(new GossipPacket("a", "b:1", [new AckMessage(1), new AliveMessage(1, Sample)])),
        ];
        int rejected = 0;
        for (int i = 0; i < 20_000; i++)
        {
            byte[] packet = [.. seeds[random.Next(seeds.Length)]];
            switch (random.Next(4))
            {
                case 0:
                    packet = packet[..random.Next(packet.Length)];
                    break;
                case 1:
                    for (int flips = random.Next(1, 6); flips > 0; flips--) packet[random.Next(packet.Length)] = (byte)random.Next(256);
                    break;
                case 2:
                    packet[random.Next(packet.Length)] ^= (byte)(1 << random.Next(8));
                    break;
                default:
                    int at = random.Next(packet.Length);
                    byte[] junk = new byte[random.Next(1, 16)];
                    random.NextBytes(junk);
                    packet = [.. packet[..at], .. junk, .. packet[at..]];
                    break;
            }
            try
            {
                GossipPacket decoded = GossipCodec.Decode(packet);
                // Whatever decodes must encode again to the same bytes (no silent normalisation).
                Assert.Equal(packet, GossipCodec.Encode(decoded));
            }
            catch (GossipFormatException)
            {
                rejected++;
            }
        }
        Assert.True(rejected > 10_000, $"only {rejected} mutations rejected");
    }

    private static byte[] Mutate(byte[] data, int index, byte value)
    {
        byte[] copy = [.. data];
        copy[index] = value;
        return copy;
    }
}
