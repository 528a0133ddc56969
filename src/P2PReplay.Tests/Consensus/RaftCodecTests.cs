using P2PReplay.Consensus;

namespace P2PReplay.Tests.Consensus;

public sealed class RaftCodecTests
{
    private static Message Append() => new()
    {
        Type = MessageType.Append,
        From = 1,
        To = 2,
        Term = 5,
        LogTerm = 4,
        Index = 10,
        Commit = 9,
        Entries = [new Entry(4, 11, EntryType.Normal, [1, 2, 3]), new Entry(5, 12, EntryType.ConfChange, new ConfChange(ConfChangeType.AddLearner, 7).Encode()), new Entry(5, 13, EntryType.Normal, [])],
    };

    private static Message InstallSnapshot() => new()
    {
        Type = MessageType.InstallSnapshot,
        From = 3,
        To = 1,
        Term = 8,
        Snapshot = new Snapshot(new SnapshotMetadata(100, 7, new ConfState([1, 2, 3], [9])), [9, 8, 7, 6]),
    };

    private static Message Reject() => new() { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 5, Index = 10, Reject = true, RejectHint = 6, LogTerm = 3 };

    private static Message ReadHeartbeat() => new() { Type = MessageType.Heartbeat, From = 1, To = 3, Term = 4, Commit = 2, Context = 99 };

    private static Message Transfer() => new() { Type = MessageType.Vote, From = 2, To = 3, Term = 9, Index = 4, LogTerm = 2, LeaderTransfer = true };

    public static TheoryData<string> Samples() => ["append", "snapshot", "reject", "transfer", "read"];

    private static Message Sample(string name) => name switch
    {
        "append" => Append(),
        "snapshot" => InstallSnapshot(),
        "reject" => Reject(),
        "read" => ReadHeartbeat(),
        _ => Transfer(),
    };

    [Theory]
    [MemberData(nameof(Samples))]
    public void Round_trips(string name)
    {
        Message original = Sample(name);
        Message decoded = RaftCodec.Decode(RaftCodec.Encode(original));
        Assert.Equal(original.ToString(), decoded.ToString());
        Assert.Equal(original.Entries, decoded.Entries, (a, b) => a.Term == b.Term && a.Index == b.Index && a.Type == b.Type && a.Data.SequenceEqual(b.Data));
        Assert.Equal(original.Reject, decoded.Reject);
        Assert.Equal(original.LeaderTransfer, decoded.LeaderTransfer);
        Assert.Equal(original.RejectHint, decoded.RejectHint);
        Assert.Equal(original.Context, decoded.Context);
        if (original.Snapshot is { } snapshot)
        {
            Assert.Equal(snapshot.Metadata, decoded.Snapshot!.Metadata);
            Assert.Equal(snapshot.Data, decoded.Snapshot.Data);
        }
    }

    [Fact]
    public void Every_truncation_is_refused()
    {
        byte[] bytes = RaftCodec.Encode(Append());
        for (int length = 0; length < bytes.Length; length++)
        {
            Assert.Throws<RaftFormatException>(() => RaftCodec.Decode(bytes.AsSpan(0, length)));
        }
        Assert.Throws<RaftFormatException>(() => RaftCodec.Decode([.. bytes, 0]));
    }

    [Fact]
    public void Invalid_fields_are_refused()
    {
        byte[] bytes = RaftCodec.Encode(Append());
        byte[] badType = (byte[])bytes.Clone();
        badType[1] = 42;
        Assert.Throws<RaftFormatException>(() => RaftCodec.Decode(badType));
        byte[] hugeCount = (byte[])bytes.Clone();
        hugeCount[3 + 64 + 3] = 0x7F;
        Assert.Throws<RaftFormatException>(() => RaftCodec.Decode(hugeCount));
        Message gap = Append() with { Index = 3 };
        Assert.Throws<RaftFormatException>(() => RaftCodec.Decode(RaftCodec.Encode(gap)));
    }

    [Fact]
    public void Fuzzed_inputs_only_raise_format_errors()
    {
        var random = new Random(20261128);
        byte[][] seeds = [.. new[] { "append", "snapshot", "reject", "transfer", "read" }.Select(name => RaftCodec.Encode(Sample(name)))];
        for (int i = 0; i < 20000; i++)
        {
            byte[] input = (byte[])seeds[random.Next(seeds.Length)].Clone();
            int mutations = 1 + random.Next(4);
            for (int m = 0; m < mutations; m++)
            {
                switch (random.Next(4))
                {
                    case 0: input[random.Next(input.Length)] ^= (byte)(1 << random.Next(8)); break;
                    case 1: input[random.Next(input.Length)] = (byte)random.Next(256); break;
                    case 2: input = input[..random.Next(input.Length)]; break;
                    default: input = [.. input, (byte)random.Next(256)]; break;
                }
                if (input.Length == 0) break;
            }
            try
            {
                Message decoded = RaftCodec.Decode(input);
                // Whatever decodes must re-encode to the same bytes (canonical form).
                Assert.Equal(input, RaftCodec.Encode(decoded));
            }
            catch (RaftFormatException)
            {
            }
        }
    }
}
