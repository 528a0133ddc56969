using P2PReplay.Cluster.Vms;

namespace P2PReplay.Tests.ClusterTests;

public sealed class VmStreamTests
{
    [Fact]
    public void Messages_round_trip()
    {
        var data = VmMessage.LogData("web", 3, 4096, new byte[] { 1, 2, 3 });
        var decoded = VmMessage.Decode(data.Encode());
        Assert.Equal((VmMessageType.LogData, "web", 3UL, 4096UL), (decoded.Type, decoded.Vm, decoded.Epoch, decoded.Offset));
        Assert.Equal(new byte[] { 1, 2, 3 }, decoded.Data.ToArray());

        var ack = VmMessage.Decode(VmMessage.Ack("web", 3, 777, 42, ReplicaState.Replaying).Encode());
        Assert.Equal((VmMessageType.Ack, 777UL, 42L, (byte)ReplicaState.Replaying), (ack.Type, ack.Offset, ack.Exit, ack.State));

        var heartbeat = VmMessage.Decode(VmMessage.Heartbeat("web", 3, 99, 5000, ended: true).Encode());
        Assert.Equal((99L, 5000UL, (byte)1), (heartbeat.Exit, heartbeat.LogBytes, heartbeat.State));
    }

    [Fact]
    public void Fuzzed_messages_throw_only_format_errors()
    {
        var random = new Random(5);
        byte[][] valid = [VmMessage.LogData("vm-1", 1, 0, new byte[40]).Encode(), VmMessage.Ack("vm-1", 1, 10, 3, ReplicaState.Finished).Encode(), VmMessage.Heartbeat("vm", 2, 1, 1, false).Encode(),
            VmMessage.CheckpointRequest("vm", 2).Encode(), VmMessage.CheckpointData("vm", 2, 500, 16, 64, new byte[20]).Encode()];
        for (int round = 0; round < 20_000; round++)
        {
            byte[] bytes = (byte[])valid[round % valid.Length].Clone();
            for (int flips = random.Next(1, 4); flips > 0; flips--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            if (random.Next(3) == 0) bytes = bytes[..random.Next(bytes.Length)];
            try
            {
                VmMessage.Decode(bytes);
            }
            catch (VmWireFormatException)
            {
            }
        }
    }

    [Fact]
    public void Log_buffer_reads_across_segments_and_maps_exits_to_lengths()
    {
        var log = new LogBuffer();
        log.Append([1, 2, 3]);
        log.Mark(10);
        log.Append([4, 5]);
        log.Append([6]);
        log.Mark(20);
        Assert.Equal(new byte[] { 2, 3, 4, 5 }, log.Read(1, 4));
        Assert.Equal(new byte[] { 6 }, log.Read(5, 100));
        Assert.Empty(log.Read(6, 100));
        Assert.Equal(-1, log.ExitCoveredBy(2));
        Assert.Equal(10, log.ExitCoveredBy(3));
        Assert.Equal(10, log.ExitCoveredBy(5));
        Assert.Equal(20, log.ExitCoveredBy(6));
    }

    [Fact]
    public async Task Live_stream_accepts_only_the_next_offset_and_blocks_until_data()
    {
        var stream = new LiveLogStream(new LogBuffer());
        Assert.False(stream.Offer(5, [9]));
        Assert.True(stream.Offer(0, [1, 2]));
        Assert.False(stream.Offer(0, [1, 2]));
        Assert.True(stream.Offer(2, [3]));
        byte[] buffer = new byte[10];
        Assert.Equal(2, stream.Read(buffer, 0, 10));
        Assert.Equal(1, stream.Read(buffer, 0, 10));
        var reader = Task.Run(() => stream.Read(buffer, 0, 10));
        await Task.Delay(100);
        Assert.False(reader.IsCompleted);
        Assert.True(stream.Offer(3, [7, 7, 7]));
        Assert.Equal(3, await reader.WaitAsync(TimeSpan.FromSeconds(5)));
        stream.Close(abandon: false);
        Assert.Equal(0, stream.Read(buffer, 0, 10));
    }

    [Fact]
    public void Output_is_released_only_up_to_an_exit()
    {
        var output = new VmOutput();
        output.Add(5, 1, "a"u8);
        output.Add(9, 1, "b"u8);
        output.Add(12, 2, "c"u8);
        Assert.Equal("ab"u8.ToArray(), output.UpTo(9));
        Assert.Equal("abc"u8.ToArray(), output.UpTo(long.MaxValue));
        Assert.Empty(output.UpTo(4));
    }

    [Fact]
    public async Task Output_waits_for_in_sync_replicas_however_silent_but_not_for_one_catching_up()
    {
        await using var network = new P2PReplay.Transport.PeerNetwork(P2PReplay.Tests.Transport.TestNodes.Context(1), (_, _) => ValueTask.CompletedTask);
        var log = new LogBuffer();
        log.Append(new byte[100]);
        log.Mark(5);
        long now = 0;
        using var streamer = new LogStreamer("vm", 1, log, [("b", "127.0.0.1:1")], network, () => now, () => 5);
        VmMessage Ack(ulong bytes) => VmMessage.Ack("vm", 1, bytes, 0, ReplicaState.Replaying);
        Assert.Equal(-1, streamer.ReleasedExit());
        streamer.OnAck("b", Ack(100));
        Assert.Equal(5, streamer.ReleasedExit());

        // b falls silent for a minute: it still holds output back (a cut-off primary must not go on alone) and is
        // reported, so the cluster can drop it.
        log.Append(new byte[50]);
        log.Mark(9);
        now += 60_000;
        Assert.Equal(5, streamer.ReleasedExit());
        Assert.Equal(["b"], streamer.SilentReplicas(1000));

        // Dropped; c joins (repair) and holds nothing back until it has all the log there is.
        streamer.SetReplicas([("c", "127.0.0.1:1")]);
        Assert.Equal(long.MaxValue, streamer.ReleasedExit());
        streamer.OnAck("c", Ack(100));
        Assert.Equal(long.MaxValue, streamer.ReleasedExit());
        streamer.OnAck("c", Ack(150));
        Assert.Equal(9, streamer.ReleasedExit());
        log.Append(new byte[10]);
        log.Mark(12);
        Assert.Equal(9, streamer.ReleasedExit());
        Assert.Empty(streamer.SilentReplicas(1000));

        // c comes back with less than it had (its daemon restarted): it catches up again before it counts.
        streamer.OnAck("c", Ack(0));
        Assert.Equal(long.MaxValue, streamer.ReleasedExit());
    }

    [Fact]
    public void Checkpoint_messages_round_trip_and_out_of_range_pieces_are_refused()
    {
        var request = VmMessage.Decode(VmMessage.CheckpointRequest("web", 4).Encode());
        Assert.Equal((VmMessageType.CheckpointRequest, "web", 4UL), (request.Type, request.Vm, request.Epoch));
        var piece = VmMessage.Decode(VmMessage.CheckpointData("web", 4, 9000, 512, 2048, new byte[] { 7, 8 }).Encode());
        Assert.Equal((VmMessageType.CheckpointData, 9000L, 512UL, 2048UL), (piece.Type, piece.Exit, piece.Offset, piece.LogBytes));
        Assert.Equal(new byte[] { 7, 8 }, piece.Data.ToArray());
        var heartbeat = VmMessage.Decode(VmMessage.Heartbeat("web", 4, 1, 100, false, heldFrom: 64).Encode());
        Assert.Equal(64UL, heartbeat.Offset);
        // A piece past the checkpoint's end, an empty one, a checkpoint over the limit: refused.
        Assert.Throws<VmWireFormatException>(() => VmMessage.Decode(VmMessage.CheckpointData("web", 4, 0, 2047, 2048, new byte[] { 1, 2 }).Encode()));
        Assert.Throws<VmWireFormatException>(() => VmMessage.Decode(VmMessage.CheckpointData("web", 4, 0, 0, 2048, ReadOnlyMemory<byte>.Empty).Encode()));
        Assert.Throws<VmWireFormatException>(() => VmMessage.Decode(VmMessage.CheckpointData("web", 4, 0, 0, (ulong)Checkpoint.MaxBytes + 1, new byte[1]).Encode()));
    }

    [Fact]
    public void Checkpoints_assemble_from_pieces_in_order_and_a_tampered_one_is_refused()
    {
        byte[] snapshot = [.. Enumerable.Range(0, 3000).Select(i => (byte)i)];
        byte[] connections = [1, 2, 3, 4];
        var made = Checkpoint.Create(12345, 77, snapshot, connections);
        var parsed = Checkpoint.Parse(made.Encoded);
        Assert.Equal(12345, parsed.TailOffset);
        Assert.Equal(snapshot, parsed.Snapshot.ToArray());
        Assert.Equal(connections, parsed.Connections);

        var assembly = new CheckpointAssembly();
        ulong total = (ulong)made.Encoded.Length;
        Assert.Null(assembly.Offer(12345, 0, total, made.Encoded.AsSpan(0, 1000)));
        // Out of order: ignored (the sender resends from the start).
        Assert.Null(assembly.Offer(12345, 2000, total, made.Encoded.AsSpan(2000, 100)));
        Assert.Null(assembly.Offer(12345, 1000, total, made.Encoded.AsSpan(1000, 1000)));
        var whole = assembly.Offer(12345, 2000, total, made.Encoded.AsSpan(2000));
        Assert.NotNull(whole);
        Assert.Equal(made.Encoded, whole.Encoded);

        byte[] tampered = (byte[])made.Encoded.Clone();
        tampered[^10] ^= 1;
        Assert.Throws<CheckpointFormatException>(() => Checkpoint.Parse(tampered));
        Assert.Throws<CheckpointFormatException>(() => assembly.Offer(12345, 0, (ulong)tampered.Length, tampered));
        Assert.Throws<CheckpointFormatException>(() => Checkpoint.Parse(made.Encoded[..^1]));

        var random = new Random(9);
        for (int round = 0; round < 5000; round++)
        {
            byte[] bytes = (byte[])made.Encoded.Clone();
            for (int flips = random.Next(1, 4); flips > 0; flips--) bytes[random.Next(64)] = (byte)random.Next(256);
            if (random.Next(3) == 0) bytes = bytes[..random.Next(bytes.Length)];
            try
            {
                Checkpoint.Parse(bytes);
            }
            catch (CheckpointFormatException)
            {
            }
        }
    }

    [Fact]
    public void A_truncated_log_keeps_offsets_and_reads_nothing_before_its_start()
    {
        var log = new LogBuffer();
        log.Append(new byte[100]);
        log.Mark(1);
        log.Append(Enumerable.Range(0, 50).Select(i => (byte)i).ToArray());
        log.Mark(2);
        Assert.Equal(0, log.TruncateBefore(99));
        Assert.Equal(100, log.TruncateBefore(120));
        Assert.Equal(100, log.Start);
        Assert.Equal(150, log.Length);
        Assert.Empty(log.Read(50, 10));
        Assert.Equal(new byte[] { 5, 6, 7 }, log.Read(105, 3));
        Assert.Equal(2, log.ExitCoveredBy(150));
        Assert.Equal(1, log.ExitCoveredBy(100));

        // A replica that starts from a checkpoint holds the log from its tail offset.
        var tail = new LogBuffer(4096);
        var stream = new LiveLogStream(tail);
        Assert.False(stream.Offer(0, new byte[] { 1 }));
        Assert.True(stream.Offer(4096, new byte[] { 1, 2 }));
        Assert.Equal(4098, stream.Received);
        Assert.Equal(4096, stream.ReadPosition);
    }
}
