using System.Text;
using P2PReplay.Cluster.Vms;
using P2PReplay.Linux.Net;

namespace P2PReplay.Tests.ClusterTests;

/// <summary>
/// The primary's side of exposed connections (<see cref="VmConnections"/>) driven by hand: front-end messages in,
/// what the guest gets from Poll, what is released when, and how a new primary resumes a connection.
/// </summary>
public sealed class VmConnectionsTests
{
    private const string Vm = "kv";
    private const string FrontEnd = "10.0.0.2:7410";

    private sealed class Harness : IDisposable
    {
        public List<(string Address, NetMessage Message)> Sent { get; } = [];
        public long Exit { get; set; } = 1;
        public long Released { get; set; } = -1;
        public int Flushes { get; private set; }
        public VmConnections Connections { get; }

        public Harness(bool live = true, ulong epoch = 1, SwitchoverHold? hold = null)
        {
            var link = new VmNetLink(new VmNetLink.RemoteSend((address, message, _) =>
            {
                lock (Sent) Sent.Add((address, message));
                return ValueTask.CompletedTask;
            }), "10.0.0.1:7410", "self");
            Connections = new VmConnections(Vm, link, () => Exit, () => Environment.TickCount64) { Hold = hold };
            if (live) Connections.GoLive(epoch, () => Released, () => Flushes++);
        }

        public void FromFrontEnd(NetMessageType type, long connection, long offset = 0, ulong aux = 0, int port = 0, byte[]? data = null, ulong epoch = 1) =>
            Connections.OnFrontEndMessage(FrontEnd, new NetMessage(type, Vm, epoch, connection, (ulong)offset, aux, port, data ?? []));

        public void Open(long connection, long outputHeld = 0, long inputCommitted = 0, ulong epoch = 1) =>
            FromFrontEnd(NetMessageType.Open, connection, outputHeld, (ulong)inputCommitted, 7000, [127, 0, 0, 1, 0x39, 0x30], epoch);

        /// <summary>Waits until the pump sent a message matching <paramref name="match"/>.</summary>
        public NetMessage WaitFor(Func<NetMessage, bool> match, string what)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            while (DateTime.UtcNow < deadline)
            {
                Connections.Wake();
                lock (Sent)
                {
                    foreach (var (_, message) in Sent)
                    {
                        if (match(message)) return message;
                    }
                }
                Thread.Sleep(5);
            }
            string sent;
            lock (Sent) sent = string.Join(", ", Sent.Select(s => $"{s.Message.Type}@{s.Message.Offset}"));
            throw new Xunit.Sdk.XunitException($"no {what} was sent; sent: {sent}");
        }

        public string OutputSent(long connection)
        {
            lock (Sent)
            {
                var bytes = new MemoryStream();
                foreach (var (_, m) in Sent.Where(s => s.Message.Type == NetMessageType.Output && s.Message.Connection == connection).OrderBy(s => s.Message.Offset))
                {
                    if ((long)m.Offset == bytes.Length) bytes.Write(m.Data.Span);
                    else if ((long)m.Offset + m.Data.Length > bytes.Length) bytes.Write(m.Data.Span[(int)(bytes.Length - (long)m.Offset)..]);
                }
                return Encoding.ASCII.GetString(bytes.ToArray());
            }
        }

        public void Dispose() => Connections.Dispose();
    }

    [Fact]
    public void A_connection_reaches_the_guest_only_once_it_listens_then_its_bytes_and_end()
    {
        using var h = new Harness();
        h.Open(5);
        h.FromFrontEnd(NetMessageType.Input, 5, 0, data: "hello"u8.ToArray());
        Assert.Empty(h.Connections.Poll(0));
        h.Connections.Listen(7000);
        var events = h.Connections.Poll(0);
        Assert.Equal([NetEventKind.Connected, NetEventKind.Data], events.Select(e => e.Kind));
        Assert.Equal((7000, 5L, 12345), (events[0].Port, events[0].Connection, events[0].PeerPort));
        Assert.Equal("hello", Encoding.ASCII.GetString(events[1].Data!));
        // A repeat and a gap are ignored; the continuation is taken.
        h.FromFrontEnd(NetMessageType.Input, 5, 0, data: "hello"u8.ToArray());
        h.FromFrontEnd(NetMessageType.Input, 5, 9, data: "gap"u8.ToArray());
        h.FromFrontEnd(NetMessageType.Input, 5, 3, data: "lo world"u8.ToArray());
        h.FromFrontEnd(NetMessageType.InputEnd, 5, 11); // "hello world" is 11 bytes
        events = h.Connections.Poll(0);
        Assert.Equal([NetEventKind.Data, NetEventKind.PeerClosed], events.Select(e => e.Kind));
        Assert.Equal(" world", Encoding.ASCII.GetString(events[0].Data!));
    }

    [Fact]
    public void Output_is_released_only_up_to_the_exits_every_replica_holds()
    {
        using var h = new Harness();
        h.Connections.Listen(7000);
        h.Open(5);
        h.Connections.Poll(0);
        h.Exit = 10;
        h.Connections.Send(5, "first "u8);
        h.Exit = 20;
        h.Connections.Send(5, "second"u8);
        h.Connections.Close(5);
        h.WaitFor(m => m.Type == NetMessageType.State, "state");
        Thread.Sleep(50);
        Assert.Equal("", h.OutputSent(5));
        h.Released = 15;
        h.WaitFor(m => m.Type == NetMessageType.Output, "output");
        Assert.Equal("first ", h.OutputSent(5));
        Assert.DoesNotContain(h.Sent, s => s.Message.Type == NetMessageType.OutputEnd);
        h.Released = 20;
        var end = h.WaitFor(m => m.Type == NetMessageType.OutputEnd, "the end");
        Assert.Equal("first second", h.OutputSent(5));
        Assert.Equal((12UL, 2UL), (end.Offset, end.Aux));
    }

    [Fact]
    public void Input_is_committed_when_the_exit_that_took_it_is_everywhere()
    {
        using var h = new Harness();
        h.Connections.Listen(7000);
        h.Open(5);
        h.FromFrontEnd(NetMessageType.Input, 5, 0, data: "abcdef"u8.ToArray());
        h.Exit = 30;
        h.Connections.Poll(0);
        h.WaitFor(m => m.Type == NetMessageType.State && m.Offset == 6 && m.Aux == 0, "state: 6 held, none committed");
        h.Released = 30;
        h.WaitFor(m => m.Type == NetMessageType.State && m.Aux == 6, "state: 6 committed");
    }

    [Fact]
    public async Task A_waiting_guest_ships_its_log_first_and_wakes_for_client_bytes()
    {
        using var h = new Harness();
        h.Connections.Listen(7000);
        h.Open(5);
        h.Connections.Poll(0);
        var waiting = Task.Run(() => h.Connections.Poll(-1));
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        Assert.Equal(1, h.Flushes);
        h.FromFrontEnd(NetMessageType.Input, 5, 0, data: "x"u8.ToArray());
        var events = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(NetEventKind.Data, Assert.Single(events).Kind);
        // A finite wait with nothing arriving returns empty after its time.
        Assert.Empty(h.Connections.Poll(30_000_000));
    }

    [Fact]
    public void A_promoted_replica_knows_each_connection_from_the_replay_and_resumes_where_the_front_end_is()
    {
        using var h = new Harness(live: false);
        // Replaying: the guest accepted connection 5, got 8 bytes, wrote 10 (at exits 3 and 4).
        h.Connections.Listen(7000);
        h.Connections.Replayed([NetEvent.Connect(7000, 5, [127, 0, 0, 1], 999), NetEvent.Bytes(5, "GET a\nGE"u8.ToArray())]);
        h.Exit = 3;
        h.Connections.Send(5, "VALUE "u8);
        h.Exit = 4;
        h.Connections.Send(5, "1\n"u8);
        // The front end asks before this copy is live: kept until then.
        h.Open(5, outputHeld: 6, inputCommitted: 4, epoch: 2);
        Assert.Empty(h.Sent);
        h.Connections.GoLive(2, () => h.Released, () => { });
        // It resends input from byte 8 (what the guest has), and gets the output from byte 6 once released.
        var state = h.WaitFor(m => m.Type == NetMessageType.State, "the answer to Open");
        Assert.Equal((8UL, 1), (state.Offset, state.Port & 1));
        h.Released = 4;
        h.WaitFor(m => m.Type == NetMessageType.Output, "output");
        var output = h.Sent.Where(s => s.Message.Type == NetMessageType.Output).Select(s => s.Message).ToList();
        Assert.Equal(6UL, output[0].Offset);
        Assert.Equal("1\n", Encoding.ASCII.GetString(output[0].Data.Span));
        // The rest of "GET b\n" comes from the front end; the guest gets only the new bytes.
        h.FromFrontEnd(NetMessageType.Input, 5, 4, data: "T b\nGET c\n"u8.ToArray(), epoch: 2);
        var events = h.Connections.Poll(0);
        Assert.Equal("GET c\n", Encoding.ASCII.GetString(Assert.Single(events).Data!));
    }

    [Fact]
    public void Resuming_a_connection_the_vm_does_not_know_resets_it_and_old_epochs_are_ignored()
    {
        using var h = new Harness(epoch: 3);
        h.Open(9, outputHeld: 100, epoch: 3);
        h.WaitFor(m => m.Type == NetMessageType.Reset && m.Connection == 9, "a reset");
        h.Open(10, epoch: 2);
        h.FromFrontEnd(NetMessageType.Input, 10, 0, data: "x"u8.ToArray(), epoch: 2);
        h.Connections.Listen(7000);
        Assert.Empty(h.Connections.Poll(0));
        Assert.Equal(0, h.Connections.Count);
    }

    [Fact]
    public void A_client_gone_ends_the_guests_input_and_drops_its_output()
    {
        using var h = new Harness();
        h.Connections.Listen(7000);
        h.Open(5);
        h.Connections.Poll(0);
        h.FromFrontEnd(NetMessageType.OutputAck, 5, 0, aux: 2);
        Assert.Equal(NetEventKind.PeerClosed, Assert.Single(h.Connections.Poll(0)).Kind);
        h.Connections.Send(5, "nobody"u8);
        h.Connections.Close(5);
        h.Released = 100;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (h.Connections.Count > 0 && DateTime.UtcNow < deadline)
        {
            h.Connections.Wake();
            Thread.Sleep(5);
        }
        Assert.Equal(0, h.Connections.Count);
        Assert.DoesNotContain(h.Sent, s => s.Message.Type == NetMessageType.Output);
    }

    [Fact]
    public void Net_messages_round_trip_and_malformed_ones_are_refused_cleanly()
    {
        var open = new NetMessage(NetMessageType.Open, "web", 4, 77, 10, 20, 7000, new byte[] { 10, 0, 0, 9, 1, 2 });
        var decoded = NetMessage.Decode(open.Encode());
        Assert.Equal((open.Type, open.Vm, open.Epoch, open.Connection, open.Offset, open.Aux, open.Port), (decoded.Type, decoded.Vm, decoded.Epoch, decoded.Connection, decoded.Offset, decoded.Aux, decoded.Port));
        Assert.Equal(open.Data.ToArray(), decoded.Data.ToArray());
        Assert.Throws<NetWireFormatException>(() => NetMessage.Decode(new NetMessage(NetMessageType.Input, "web", 1, -5, 0, 0, 0, new byte[3]).Encode()));
        Assert.Throws<NetWireFormatException>(() => NetMessage.Decode(new NetMessage(NetMessageType.Open, "web", 1, 5, 0, 0, 0, new byte[4]).Encode()));
        Assert.Throws<NetWireFormatException>(() => NetMessage.Decode(new NetMessage(NetMessageType.State, "web", 1, 5, 0, 0, 0, new byte[1]).Encode()));
        byte[] valid = new NetMessage(NetMessageType.Output, "web", 1, 5, 3, 0, 0, "bytes"u8.ToArray()).Encode();
        for (int length = 0; length < valid.Length; length++) Assert.Throws<NetWireFormatException>(() => NetMessage.Decode(valid.AsMemory(0, length)));
        var random = new Random(11);
        for (int i = 0; i < 5000; i++)
        {
            byte[] mutated = (byte[])valid.Clone();
            for (int flips = random.Next(1, 4); flips > 0; flips--) mutated[random.Next(mutated.Length)] ^= (byte)(1 << random.Next(8));
            try
            {
                var message = NetMessage.Decode(mutated);
                Assert.True(message.Connection > 0 && message.Data.Length <= NetMessage.MaxDataBytes);
            }
            catch (NetWireFormatException)
            {
                // Refused with a reason: what a malformed frame must get.
            }
        }
    }

    [Fact]
    public void A_byte_window_holds_a_stream_between_two_offsets()
    {
        var window = new ByteWindow();
        window.Append("hello "u8);
        window.Append("world"u8);
        Assert.Equal((0L, 11L), (window.Start, window.End));
        window.DropBefore(6);
        Assert.Equal("world", Encoding.ASCII.GetString(window.Read(6, 100)));
        Assert.Throws<ArgumentOutOfRangeException>(() => window.Read(2, 1));
        for (int i = 0; i < 1000; i++) window.Append(new byte[100]);
        window.DropBefore(window.End - 1);
        Assert.Equal(1, window.Count);
        window.Reset(500);
        Assert.Equal((500L, 500L), (window.Start, window.End));
    }

    [Fact]
    public async Task A_held_guest_wait_takes_no_input_and_does_not_time_out_until_released()
    {
        using var hold = new SwitchoverHold();
        using var h = new Harness(hold: hold);
        h.Connections.Listen(7000);
        h.Open(5);
        Assert.Contains(h.Connections.Poll(0), e => e.Kind == NetEventKind.Connected);

        Assert.True(hold.TryBegin(out var quiet));
        Assert.False(hold.TryBegin(out _));
        h.Connections.Nudge();
        int flushesBefore = h.Flushes;
        // The guest waits with a 100 ms timeout while input arrives: held, it gets neither.
        var polling = Task.Run(() => h.Connections.Poll(100_000_000));
        h.FromFrontEnd(NetMessageType.Input, 5, 0, data: Encoding.ASCII.GetBytes("GET a\n"));
        await quiet.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(h.Flushes > flushesBefore, "the log was not shipped before the guest was held");
        await Task.Delay(400);
        Assert.False(polling.IsCompleted, "a held wait returned");

        hold.Release();
        h.Connections.Nudge();
        var events = await polling.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("GET a\n", Encoding.ASCII.GetString(Assert.Single(events, e => e.Kind == NetEventKind.Data).Data!));
    }

    [Fact]
    public async Task A_paused_vcpu_parks_for_a_hold_flushed_and_runs_on_when_released()
    {
        using var hold = new SwitchoverHold();
        // No hold asked for: a pause (a stop) is not ours.
        Assert.False(hold.ParkAfterPause(() => throw new InvalidOperationException("no flush without a hold")));

        Assert.True(hold.TryBegin(out var quiet));
        int flushes = 0;
        var parked = Task.Run(() => hold.ParkAfterPause(() => flushes++));
        await quiet.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1, flushes);
        await Task.Delay(100);
        Assert.False(parked.IsCompleted);
        hold.Release();
        Assert.True(await parked.WaitAsync(TimeSpan.FromSeconds(5)));

        // Held again, then the copy is torn down: the vCPU thread leaves (false: do not run on).
        Assert.True(hold.TryBegin(out quiet));
        parked = Task.Run(() => hold.ParkAfterPause(() => flushes++));
        await quiet.WaitAsync(TimeSpan.FromSeconds(5));
        hold.Dispose();
        Assert.False(await parked.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.False(hold.TryBegin(out _));
    }

    [Fact]
    public void A_sealed_log_ships_nothing_beyond_the_seal_until_unsealed()
    {
        var log = new LogBuffer();
        log.Append(new byte[100]);
        log.Mark(1);
        log.Append(new byte[10]);
        Assert.Equal(-1, log.Seal());
        log.Mark(2);
        Assert.Equal(110, log.Seal());
        Assert.True(log.Sealed);
        // A held copy torn down may still write; none of it is ever shipped.
        log.Append(new byte[50]);
        log.Mark(3);
        log.Complete();
        Assert.Equal(110, log.ShippableLength);
        Assert.False(log.WaitBeyondAsync(110, TimeSpan.FromMilliseconds(50), CancellationToken.None).IsCompleted);
        log.Unseal();
        Assert.Equal(160, log.ShippableLength);
    }

    [Fact]
    public void A_replicas_connection_state_travels_with_a_checkpoint_and_resumes_after_promotion()
    {
        using var replica = new Harness(live: false);
        replica.Connections.Listen(7000);
        replica.Exit = 5;
        replica.Connections.Replayed([NetEvent.Connect(7000, 9, [10, 0, 0, 7], 4321), NetEvent.Bytes(9, Encoding.ASCII.GetBytes("GET a\n"))]);
        replica.Connections.Send(9, Encoding.ASCII.GetBytes("VALUE x\n"));
        byte[] state = replica.Connections.CaptureReplicaState();

        // A replica started from that checkpoint, promoted: it resumes the connection at the front end's offsets.
        using var restored = new Harness(live: false);
        restored.Connections.RestoreReplicaState(state);
        Assert.Equal(1, restored.Connections.Count);
        restored.Released = 10;
        restored.Connections.GoLive(1, () => restored.Released, () => { });
        restored.Open(9, outputHeld: 0, inputCommitted: 6);
        var output = restored.WaitFor(m => m.Type == NetMessageType.Output && m.Connection == 9, "the output the front end lacks");
        Assert.Equal("VALUE x\n", Encoding.ASCII.GetString(output.Data.Span));
        var resync = restored.WaitFor(m => m.Type == NetMessageType.State && m.Connection == 9, "the input state");
        Assert.Equal(6UL, resync.Offset);

        Assert.Throws<InvalidDataException>(() => new Harness(live: false).Connections.RestoreReplicaState(state[..^3]));
        Assert.Throws<InvalidDataException>(() => new Harness(live: false).Connections.RestoreReplicaState([1, 2, 3, 4, 5]));
    }
}
