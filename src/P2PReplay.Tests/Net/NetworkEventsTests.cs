using P2PReplay.Linux.Net;
using P2PReplay.Replay;

namespace P2PReplay.Tests.Net;

public sealed class NetworkEventsTests
{
    [Fact]
    public void Batches_round_trip_through_the_log_encoding()
    {
        NetEvent[] events =
        [
            NetEvent.Connect(8080, 1, [127, 0, 0, 1], 40000),
            NetEvent.Connect(443, long.MaxValue, new byte[16], 1),
            NetEvent.Bytes(1, "hello"u8.ToArray()),
            NetEvent.Bytes(2, []),
            NetEvent.Closed(1),
        ];
        var decoded = NetworkEvents.Decode(NetworkEvents.Encode(events));
        Assert.Equal(events.Length, decoded.Count);
        for (int i = 0; i < events.Length; i++)
        {
            Assert.Equal(events[i].Kind, decoded[i].Kind);
            Assert.Equal(events[i].Connection, decoded[i].Connection);
            Assert.Equal(events[i].Port, decoded[i].Port);
            Assert.Equal(events[i].PeerPort, decoded[i].PeerPort);
            Assert.Equal(events[i].Data ?? [], decoded[i].Data ?? []);
        }
        var w = new ByteWriter();
        new InputEvent(0, 12, 7, InputKind.Network, events.Length, NetworkEvents.Encode(events)).Encode(w);
        var input = InputEvent.Decode(w.Written);
        Assert.Equal(InputKind.Network, input.Kind);
        Assert.Equal(events.Length, input.Value);
        Assert.Equal("5 network event(s): connection 1 to port 8080, connection 9223372036854775807 to port 443, 5 bytes on 1, 0 bytes on 2, ...", input.Describe());
    }

    [Theory]
    [InlineData(new byte[] { 1, 9, 1 })] // unknown kind
    [InlineData(new byte[] { 1, 1, 1, 80, 3, 1, 2, 3, 0 })] // a 3-byte address
    [InlineData(new byte[] { 2, 3, 1 })] // cut off
    [InlineData(new byte[] { 0, 0 })] // trailing bytes
    public void Malformed_batches_are_format_errors(byte[] payload) =>
        Assert.Throws<FormatException>(() => NetworkEvents.Decode(payload));

    [Fact]
    public void Without_a_network_a_timed_wait_still_takes_its_time()
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Empty(NoHostNetwork.Sleeping.Poll(30_000_000));
        Assert.True(watch.ElapsedMilliseconds >= 25, $"{watch.ElapsedMilliseconds} ms");
        Assert.Empty(NoHostNetwork.Sleeping.Poll(-1)); // an endless wait: nothing will ever come, at once
        Assert.Empty(NoHostNetwork.Instance.Poll(long.MaxValue));
    }
}
