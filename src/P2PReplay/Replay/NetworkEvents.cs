using P2PReplay.Linux;
using P2PReplay.Linux.Net;

namespace P2PReplay.Replay;

/// <summary>The log encoding of a batch of network events (the payload of an <see cref="InputKind.Network"/> input).</summary>
public static class NetworkEvents
{
    public const int MaxEvents = 1 << 16;

    public static byte[] Encode(IReadOnlyList<NetEvent> events)
    {
        var w = new ByteWriter();
        w.VarU((ulong)events.Count);
        foreach (var e in events)
        {
            w.U8((byte)e.Kind);
            w.VarU((ulong)e.Connection);
            switch (e.Kind)
            {
                case NetEventKind.Connected:
                    w.VarU((ulong)e.Port);
                    w.Bytes(e.Data ?? []);
                    w.VarU((ulong)e.PeerPort);
                    break;
                case NetEventKind.Data:
                    w.Bytes(e.Data ?? []);
                    break;
            }
        }
        return w.Written.ToArray();
    }

    public static List<NetEvent> Decode(ReadOnlySpan<byte> payload)
    {
        var r = new ByteReader(payload);
        int count = r.Int32(MaxEvents);
        var events = new List<NetEvent>(count);
        for (int i = 0; i < count; i++)
        {
            var kind = (NetEventKind)r.U8();
            long connection = (long)r.VarU();
            if (connection < 0) throw new FormatException("network connection id out of range");
            switch (kind)
            {
                case NetEventKind.Connected:
                    int port = r.Int32(65535);
                    byte[] address = r.Bytes().ToArray();
                    if (address.Length is not (0 or 4 or 16)) throw new FormatException("network peer address of a bad length");
                    events.Add(NetEvent.Connect(port, connection, address, r.Int32(65535)));
                    break;
                case NetEventKind.Data:
                    events.Add(NetEvent.Bytes(connection, r.Bytes().ToArray()));
                    break;
                case NetEventKind.PeerClosed:
                    events.Add(NetEvent.Closed(connection));
                    break;
                default:
                    throw new FormatException($"unknown network event kind {(byte)kind}");
            }
        }
        if (!r.AtEnd) throw new FormatException("trailing bytes after network events");
        return events;
    }
}

/// <summary>The host network while recording: every batch the guest takes is logged; what it sends goes into the output digest.</summary>
public sealed class RecordingNetwork(IHostNetwork inner, Recorder recorder) : IHostNetwork
{
    public void Listen(int port) => inner.Listen(port);

    public void Unlisten(int port) => inner.Unlisten(port);

    public IReadOnlyList<NetEvent> Poll(long timeoutNs)
    {
        var events = inner.Poll(timeoutNs);
        recorder.LogInput(InputKind.Network, events.Count, NetworkEvents.Encode(events));
        return events;
    }

    public void Send(long connection, ReadOnlySpan<byte> data)
    {
        recorder.Output.AddNetwork(OutputDigest.NetSend, connection, data);
        inner.Send(connection, data);
    }

    public void ShutdownSend(long connection)
    {
        recorder.Output.AddNetwork(OutputDigest.NetShutdown, connection, []);
        inner.ShutdownSend(connection);
    }

    public void Close(long connection)
    {
        recorder.Output.AddNetwork(OutputDigest.NetClose, connection, []);
        inner.Close(connection);
    }
}

/// <summary>The network during replay: batches come from the log; nothing touches a real network; output is hashed
/// (and handed to <paramref name="observer"/> when given, e.g. a test that checks what the replay sent).</summary>
public sealed class ReplayingNetwork(Replayer replayer, IHostNetwork? observer = null) : IHostNetwork
{
    public void Listen(int port) => observer?.Listen(port);

    public void Unlisten(int port) => observer?.Unlisten(port);

    public IReadOnlyList<NetEvent> Poll(long timeoutNs)
    {
        var input = replayer.NextInput(InputKind.Network);
        var events = NetworkEvents.Decode(input.Data);
        (observer as IReplayedNetworkObserver)?.Replayed(events);
        return events;
    }

    public void Send(long connection, ReadOnlySpan<byte> data)
    {
        replayer.Output.AddNetwork(OutputDigest.NetSend, connection, data);
        observer?.Send(connection, data);
    }

    public void ShutdownSend(long connection)
    {
        replayer.Output.AddNetwork(OutputDigest.NetShutdown, connection, []);
        observer?.ShutdownSend(connection);
    }

    public void Close(long connection)
    {
        replayer.Output.AddNetwork(OutputDigest.NetClose, connection, []);
        observer?.Close(connection);
    }
}

/// <summary>An observer of a replay that also wants the replayed batches (what the guest got from the network).</summary>
public interface IReplayedNetworkObserver
{
    void Replayed(IReadOnlyList<NetEvent> events);
}
