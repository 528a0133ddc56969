using P2PReplay.Linux.Net;
using P2PReplay.Replay;

namespace P2PReplay.Cluster.Vms;

/// <summary>
/// A VM copy's client connections as the daemons' front ends deliver them (the guest's host network).
/// <para>Replaying (a replica), it only follows: the replayed batches say what the guest got, the replayed sends what
/// it wrote, so it knows each connection's input and output offsets at every exit. Live (the primary, or a promoted
/// replica), it hands client bytes from the front ends to the guest at its syscalls (the recorder logs them) and
/// sends the guest's bytes back — output commit: only bytes written at exits every replica holds the log of.</para>
/// <para>Offsets make a failover seamless: the front end tells the new primary how much output it has, the new
/// primary tells it how much input the VM has; each resends the rest.</para>
/// </summary>
internal sealed class VmConnections : IHostNetwork, IReplayedNetworkObserver, IDisposable
{
    /// <summary>Client bytes handed to the guest per batch at most (one logged input).</summary>
    private const int MaxBatchBytes = 256 * 1024;
    /// <summary>Client bytes held for the guest beyond what it read; more is refused (the front end resends later).</summary>
    private const long MaxPendingInput = 8 << 20;
    /// <summary>Released output in flight to a front end without acknowledgement.</summary>
    private const long MaxOutputInFlight = 4 << 20;
    /// <summary>A replica keeps this much of each connection's output (a front end is never further behind).</summary>
    private const long ReplicaOutputKept = 16 << 20;
    private const long ResendAfterMs = 300;
    private const long StateEveryMs = 200;
    private const int MaxTombstones = 4096;

    private readonly string vm;
    private readonly VmNetLink link;
    private readonly Func<long> currentExit;
    private readonly Func<long> nowMs;
    private readonly object gate = new();
    private readonly Dictionary<long, Connection> connections = [];
    private readonly List<long> order = [];
    private readonly HashSet<int> listening = [];
    private readonly Queue<long> tombstoneOrder = new();
    private readonly HashSet<long> tombstones = [];
    private readonly Dictionary<long, (string Address, NetMessage Open)> waitingOpens = [];
    private readonly SemaphoreSlim wake = new(0);
    private readonly CancellationTokenSource stopping = new();
    private Task? pump;
    private volatile bool live;
    private ulong epoch;
    private Func<long> releasedExit = () => -1;
    private Action beforeBlock = () => { };

    public VmConnections(string vm, VmNetLink link, Func<long> currentExit, Func<long> nowMs)
    {
        this.vm = vm;
        this.link = link;
        this.currentExit = currentExit;
        this.nowMs = nowMs;
    }

    public bool Live => live;

    public int Count
    {
        get
        {
            lock (gate) return connections.Count;
        }
    }

    /// <summary>
    /// This copy now runs live as the primary at <paramref name="primaryEpoch"/>: hand client bytes to the guest and
    /// release its output as <paramref name="released"/> allows. <paramref name="flush"/> runs on the vCPU thread before
    /// the guest blocks waiting for the network (the log so far must reach the replicas, or its output never leaves).
    /// </summary>
    public void GoLive(ulong primaryEpoch, Func<long> released, Action flush)
    {
        List<(string, NetMessage)> opens;
        lock (gate)
        {
            epoch = primaryEpoch;
            releasedExit = released;
            beforeBlock = flush;
            live = true;
            opens = [.. waitingOpens.Values];
            waitingOpens.Clear();
        }
        foreach (var (address, open) in opens) OnFrontEndMessage(address, open);
        pump = Task.Run(PumpAsync);
    }

    /// <summary>Holds the guest's network waits for a planned switchover (set once, by the copy that owns both).</summary>
    public SwitchoverHold? Hold { get; init; }

    /// <summary>A hold began or ended: a waiting guest looks again now.</summary>
    public void Nudge()
    {
        lock (gate) Monitor.PulseAll(gate);
    }

    /// <summary>Something may be releasable (a replica acknowledged) or sendable: run the pump now.</summary>
    public void Wake()
    {
        if (wake.CurrentCount == 0) wake.Release();
    }

    // ---- the guest's side (vCPU thread): IHostNetwork ----

    public void Listen(int port)
    {
        lock (gate)
        {
            listening.Add(port);
            Monitor.PulseAll(gate);
        }
    }

    public void Unlisten(int port)
    {
        lock (gate) listening.Remove(port);
    }

    public IReadOnlyList<NetEvent> Poll(long timeoutNs)
    {
        long deadline = timeoutNs > 0 ? nowMs() + Math.Max(1, timeoutNs / 1_000_000) : 0;
        bool flushed = false;
        while (true)
        {
            lock (gate)
            {
                bool held = Hold?.Held == true;
                var events = held ? [] : TakeEvents();
                if (events.Count > 0 || timeoutNs == 0 || !live || stopping.IsCancellationRequested) return events;
                if (flushed && held)
                {
                    // A planned switchover holds the guest here: no input, and no timeout either (returning would
                    // record more log than the replicas are being given).
                    Hold!.Quiet();
                    Monitor.Wait(gate, TimeSpan.FromMilliseconds(50));
                    continue;
                }
                if (flushed)
                {
                    long wait = timeoutNs < 0 ? 50 : Math.Min(50, deadline - nowMs());
                    if (wait <= 0) return events;
                    Monitor.Wait(gate, TimeSpan.FromMilliseconds(wait));
                    events = TakeEvents();
                    if (events.Count > 0) return events;
                    if (timeoutNs > 0 && nowMs() >= deadline) return events;
                    continue;
                }
            }
            // The guest is about to wait: everything it did so far must reach the replicas, so its output can leave.
            beforeBlock();
            flushed = true;
        }
    }

    /// <summary>The next batch for the guest (under the lock): new connections on listened ports, bytes, ends.</summary>
    private List<NetEvent> TakeEvents()
    {
        var events = new List<NetEvent>();
        if (!live) return events;
        long exit = currentExit();
        int budget = MaxBatchBytes;
        foreach (long id in order)
        {
            var c = connections[id];
            if (!c.ConnectDelivered)
            {
                // Held until the guest listens (like a SYN waiting in the backlog).
                if (!listening.Contains(c.Port)) continue;
                events.Add(NetEvent.Connect(c.Port, c.Id, c.PeerAddress, c.PeerPort));
                c.ConnectDelivered = true;
            }
            if (c.InputDelivered < c.Input.End && budget > 0)
            {
                byte[] bytes = c.Input.Read(c.InputDelivered, budget);
                budget -= bytes.Length;
                events.Add(NetEvent.Bytes(c.Id, bytes));
                c.InputDelivered += bytes.Length;
                c.Input.DropBefore(c.InputDelivered);
                AddMark(c.InputMarks, (exit, c.InputDelivered));
            }
            if (c.InputEnd >= 0 && c.InputDelivered == c.InputEnd && !c.EndDelivered)
            {
                events.Add(NetEvent.Closed(c.Id));
                c.EndDelivered = true;
                AddMark(c.InputMarks, (exit, c.InputDelivered));
            }
        }
        return events;
    }

    public void Send(long connection, ReadOnlySpan<byte> data)
    {
        lock (gate)
        {
            if (!connections.TryGetValue(connection, out var c) || c.GuestEnd != 0) return;
            c.Output.Append(data);
            AddMark(c.OutputMarks, (currentExit(), c.Output.End));
            if (!live) c.Output.DropBefore(c.Output.End - ReplicaOutputKept);
        }
        // Without replicas it is releasable at once; with them, the pump looks again when they acknowledge.
        if (live) Wake();
    }

    public void ShutdownSend(long connection) => GuestEnds(connection, 1);

    public void Close(long connection) => GuestEnds(connection, 2);

    private void GuestEnds(long connection, int kind)
    {
        lock (gate)
        {
            if (!connections.TryGetValue(connection, out var c) || c.GuestEnd >= kind) return;
            c.GuestEnd = kind;
            c.GuestEndExit = currentExit();
        }
        Wake();
    }

    // ---- replay (vCPU thread of a replica): what the guest got ----

    public void Replayed(IReadOnlyList<NetEvent> events)
    {
        lock (gate)
        {
            long exit = currentExit();
            foreach (var e in events)
            {
                switch (e.Kind)
                {
                    case NetEventKind.Connected:
                        if (connections.ContainsKey(e.Connection)) break;
                        var created = Add(e.Connection, e.Port, e.Data ?? [], e.PeerPort);
                        created.ConnectDelivered = true;
                        break;
                    case NetEventKind.Data when connections.TryGetValue(e.Connection, out var c):
                        c.InputDelivered += e.Data?.Length ?? 0;
                        c.Input.Reset(c.InputDelivered);
                        AddMark(c.InputMarks, (exit, c.InputDelivered));
                        break;
                    case NetEventKind.PeerClosed when connections.TryGetValue(e.Connection, out var c):
                        c.EndDelivered = true;
                        c.InputEnd = c.InputDelivered;
                        AddMark(c.InputMarks, (exit, c.InputDelivered));
                        break;
                }
            }
        }
    }

    /// <summary>
    /// What a replica knows of its connections at an exit (vCPU thread, with a checkpoint's VM snapshot): a replica
    /// started from that checkpoint must be able to resume them as the primary one day.
    /// </summary>
    public byte[] CaptureReplicaState()
    {
        lock (gate)
        {
            var w = new BinaryWriter(new MemoryStream());
            w.Write(ReplicaStateMagic);
            w.Write(listening.Count);
            foreach (int port in listening.Order()) w.Write(port);
            w.Write(tombstoneOrder.Count);
            foreach (long id in tombstoneOrder) w.Write(id);
            w.Write(order.Count);
            foreach (long id in order)
            {
                var c = connections[id];
                w.Write(c.Id);
                w.Write(c.Port);
                w.Write(c.PeerAddress.Length);
                w.Write(c.PeerAddress);
                w.Write(c.PeerPort);
                w.Write(c.ConnectDelivered);
                w.Write(c.EndDelivered);
                w.Write(c.InputDelivered);
                w.Write(c.InputEnd);
                w.Write(c.InputCommitted);
                WriteMarks(w, c.InputMarks);
                w.Write(c.Output.Start);
                w.Write(c.Output.Count);
                w.Write(c.Output.Read(c.Output.Start, c.Output.Count));
                WriteMarks(w, c.OutputMarks);
                w.Write(c.Released);
                w.Write(c.GuestEnd);
                w.Write(c.GuestEndExit);
            }
            return ((MemoryStream)w.BaseStream).ToArray();
        }
    }

    private const int ReplicaStateMagic = 0x31434e43; // "CNC1"

    private static void WriteMarks(BinaryWriter w, List<(long Exit, long Offset)> marks)
    {
        w.Write(marks.Count);
        foreach (var (exit, offset) in marks)
        {
            w.Write(exit);
            w.Write(offset);
        }
    }

    /// <summary>Takes over a checkpoint's connection state (a replica started from it, before its replay runs).</summary>
    /// <exception cref="InvalidDataException">The state is malformed.</exception>
    public void RestoreReplicaState(byte[] state)
    {
        try
        {
            var r = new BinaryReader(new MemoryStream(state));
            if (r.ReadInt32() != ReplicaStateMagic) throw new InvalidDataException("not a connection state");
            int Count(int max)
            {
                int n = r.ReadInt32();
                return n >= 0 && n <= max ? n : throw new InvalidDataException($"count {n} out of range");
            }
            List<(long, long)> ReadMarks()
            {
                var marks = new List<(long, long)>();
                for (int i = Count(4096); i > 0; i--) marks.Add((r.ReadInt64(), r.ReadInt64()));
                return marks;
            }
            lock (gate)
            {
                for (int i = Count(65536); i > 0; i--) listening.Add(r.ReadInt32());
                for (int i = Count(MaxTombstones); i > 0; i--)
                {
                    long id = r.ReadInt64();
                    tombstones.Add(id);
                    tombstoneOrder.Enqueue(id);
                }
                for (int i = Count(1 << 20); i > 0; i--)
                {
                    long id = r.ReadInt64();
                    int port = r.ReadInt32();
                    byte[] address = r.ReadBytes(Count(16));
                    var c = Add(id, port, address, r.ReadInt32());
                    c.ConnectDelivered = r.ReadBoolean();
                    c.EndDelivered = r.ReadBoolean();
                    c.InputDelivered = r.ReadInt64();
                    c.InputEnd = r.ReadInt64();
                    c.InputCommitted = r.ReadInt64();
                    c.Input.Reset(c.InputDelivered);
                    c.InputMarks.AddRange(ReadMarks());
                    c.Output.Reset(r.ReadInt64());
                    c.Output.Append(r.ReadBytes(Count((int)ReplicaOutputKept)));
                    c.OutputMarks.AddRange(ReadMarks());
                    c.Released = r.ReadInt64();
                    c.GuestEnd = r.ReadInt32();
                    c.GuestEndExit = r.ReadInt64();
                }
            }
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("the connection state is truncated");
        }
    }

    /// <summary>Marks of one exit merge; a replica (which never releases) keeps a bounded number: dropping the oldest
    /// only makes its bytes wait for a later exit, which is safe.</summary>
    private static void AddMark(List<(long Exit, long Offset)> marks, (long Exit, long Offset) mark)
    {
        if (marks.Count > 0 && marks[^1].Exit == mark.Exit) marks[^1] = mark;
        else marks.Add(mark);
        if (marks.Count > 4096) marks.RemoveAt(0);
    }

    private Connection Add(long id, int port, byte[] address, int peerPort)
    {
        var c = new Connection(id, port, address, peerPort);
        connections[id] = c;
        order.Add(id);
        return c;
    }

    private void Remove(Connection c)
    {
        connections.Remove(c.Id);
        order.Remove(c.Id);
        tombstones.Add(c.Id);
        tombstoneOrder.Enqueue(c.Id);
        if (tombstoneOrder.Count > MaxTombstones) tombstones.Remove(tombstoneOrder.Dequeue());
    }

    // ---- front ends (network threads) ----

    /// <summary>A front end's message for this VM (the caller routed it here because this copy is the primary).</summary>
    public void OnFrontEndMessage(string frontEnd, NetMessage message)
    {
        bool wakeGuest = false;
        lock (gate)
        {
            if (!live)
            {
                // A promoted replica still replaying: answer once live (the front end resends its input then).
                if (message.Type == NetMessageType.Open && (waitingOpens.ContainsKey(message.Connection) || waitingOpens.Count < 65536))
                    waitingOpens[message.Connection] = (frontEnd, message);
                return;
            }
            if (message.Epoch != epoch) return;
            connections.TryGetValue(message.Connection, out var c);
            switch (message.Type)
            {
                case NetMessageType.Open:
                    if (c is null)
                    {
                        if (tombstones.Contains(message.Connection) || message.Offset != 0 || message.Aux != 0)
                        {
                            // The VM has no such connection (any more): nothing to resume.
                            Queue(frontEnd, new NetMessage(NetMessageType.Reset, vm, epoch, message.Connection, 0, 0, 0, ReadOnlyMemory<byte>.Empty));
                            break;
                        }
                        var span = message.Data.Span;
                        c = Add(message.Connection, message.Port, span[..^2].ToArray(), span[^2] | span[^1] << 8);
                        wakeGuest = true;
                    }
                    if ((long)message.Offset < c.Output.Start)
                    {
                        // The front end lacks output this copy no longer holds: it cannot be resumed exactly.
                        Queue(frontEnd, new NetMessage(NetMessageType.Reset, vm, epoch, message.Connection, 0, 0, 0, ReadOnlyMemory<byte>.Empty));
                        break;
                    }
                    c.FrontEnd = frontEnd;
                    c.FrontEndAcked = Math.Max(c.FrontEndAcked, (long)message.Offset);
                    c.SentToFrontEnd = Math.Max(c.FrontEndAcked, Math.Min(c.SentToFrontEnd, (long)message.Offset));
                    c.EndSent = false;
                    c.LastFrontEndProgressMs = nowMs();
                    c.ResyncPending = true;
                    break;
                case NetMessageType.Input when c is not null:
                    long at = (long)message.Offset;
                    long end = at + message.Data.Length;
                    if (at <= c.Input.End && end > c.Input.End && c.InputEnd < 0 && c.Input.End - c.InputDelivered < MaxPendingInput)
                    {
                        c.Input.Append(message.Data.Span[(int)(c.Input.End - at)..]);
                        wakeGuest = true;
                    }
                    break;
                case NetMessageType.InputEnd when c is not null:
                    if ((long)message.Offset == c.Input.End && c.InputEnd < 0)
                    {
                        c.InputEnd = c.Input.End;
                        wakeGuest = true;
                    }
                    break;
                case NetMessageType.OutputAck when c is not null:
                    if ((long)message.Offset > c.FrontEndAcked)
                    {
                        c.FrontEndAcked = Math.Min((long)message.Offset, c.Output.End);
                        c.LastFrontEndProgressMs = nowMs();
                    }
                    if ((message.Aux & 1) != 0 && c.FrontEndAcked == c.Output.End) c.FrontEndAckedEnd = true;
                    if ((message.Aux & 2) != 0)
                    {
                        // The client is gone: the guest reads end-of-file, its output goes nowhere.
                        c.FrontEndGone = true;
                        if (c.InputEnd < 0) c.InputEnd = c.Input.End;
                        wakeGuest = true;
                    }
                    c.Output.DropBefore(c.FrontEndGone ? c.Output.End : c.FrontEndAcked);
                    break;
            }
            if (wakeGuest) Monitor.PulseAll(gate);
        }
        Wake();
    }

    private readonly List<(string Address, NetMessage Message)> outgoing = [];

    private void Queue(string address, NetMessage message) => outgoing.Add((address, message));

    /// <summary>Releases output, answers front ends, resends what was not acknowledged; every few ms or when woken.</summary>
    private async Task PumpAsync()
    {
        var cancel = stopping.Token;
        while (!cancel.IsCancellationRequested)
        {
            try
            {
                await wake.WaitAsync(TimeSpan.FromMilliseconds(20), cancel).ConfigureAwait(false);
                List<(string Address, NetMessage Message)> batch;
                lock (gate)
                {
                    Step();
                    batch = [.. outgoing];
                    outgoing.Clear();
                }
                foreach (var (address, message) in batch)
                    await link.SendAsync(address, message, cancel).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <summary>One round of the pump (under the lock).</summary>
    private void Step()
    {
        long released = releasedExit();
        long now = nowMs();
        foreach (long id in order.ToList())
        {
            var c = connections[id];
            int releasedMarks = 0;
            while (releasedMarks < c.OutputMarks.Count && c.OutputMarks[releasedMarks].Exit <= released) c.Released = c.OutputMarks[releasedMarks++].Offset;
            c.OutputMarks.RemoveRange(0, releasedMarks);
            int committedMarks = 0;
            while (committedMarks < c.InputMarks.Count && c.InputMarks[committedMarks].Exit <= released) c.InputCommitted = c.InputMarks[committedMarks++].Offset;
            c.InputMarks.RemoveRange(0, committedMarks);
            bool endReleased = c.GuestEnd != 0 && c.GuestEndExit <= released && c.Released == c.Output.End;
            if (c.FrontEnd is not { } frontEnd) continue;
            if (c.FrontEndGone)
            {
                if (c.GuestEnd == 2 && endReleased) Remove(c);
                continue;
            }
            if (c.FrontEndAckedEnd)
            {
                if (c.GuestEnd == 2) Remove(c);
                continue;
            }
            // Go back to what the front end acknowledged when it stopped making progress (a message was lost).
            if (c.SentToFrontEnd > c.FrontEndAcked && now - c.LastFrontEndProgressMs > ResendAfterMs)
            {
                c.SentToFrontEnd = c.FrontEndAcked;
                c.EndSent = false;
                c.LastFrontEndProgressMs = now;
            }
            while (c.SentToFrontEnd < c.Released && c.SentToFrontEnd - c.FrontEndAcked < MaxOutputInFlight && c.SentToFrontEnd >= c.Output.Start)
            {
                byte[] bytes = c.Output.Read(c.SentToFrontEnd, (int)Math.Min(NetMessage.MaxDataBytes, c.Released - c.SentToFrontEnd));
                Queue(frontEnd, new NetMessage(NetMessageType.Output, vm, epoch, id, (ulong)c.SentToFrontEnd, 0, 0, bytes));
                c.SentToFrontEnd += bytes.Length;
            }
            if (endReleased && c.SentToFrontEnd == c.Output.End && !c.EndSent)
            {
                Queue(frontEnd, new NetMessage(NetMessageType.OutputEnd, vm, epoch, id, (ulong)c.Output.End, (ulong)c.GuestEnd, 0, ReadOnlyMemory<byte>.Empty));
                c.EndSent = true;
            }
            if (c.ResyncPending || c.Input.End != c.StateReceivedSent || c.InputCommitted != c.StateCommittedSent || now - c.StateSentMs >= StateEveryMs)
            {
                int flags = (c.ResyncPending ? 1 : 0) | (c.InputEnd >= 0 ? 2 : 0);
                Queue(frontEnd, new NetMessage(NetMessageType.State, vm, epoch, id, (ulong)c.Input.End, (ulong)c.InputCommitted, flags, ReadOnlyMemory<byte>.Empty));
                c.ResyncPending = false;
                c.StateReceivedSent = c.Input.End;
                c.StateCommittedSent = c.InputCommitted;
                c.StateSentMs = now;
            }
        }
    }

    public void Dispose()
    {
        stopping.Cancel();
        lock (gate) Monitor.PulseAll(gate);
        try
        {
            pump?.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
    }

    private sealed class Connection(long id, int port, byte[] peerAddress, int peerPort)
    {
        public long Id { get; } = id;
        public int Port { get; } = port;
        public byte[] PeerAddress { get; } = peerAddress;
        public int PeerPort { get; } = peerPort;
        public string? FrontEnd { get; set; }

        /// <summary>Client bytes held for the guest (from what it has, up to what arrived).</summary>
        public ByteWindow Input { get; } = new();
        public long InputDelivered { get; set; }
        /// <summary>Where the client's stream ends (-1: open).</summary>
        public long InputEnd { get; set; } = -1;
        public bool ConnectDelivered { get; set; }
        public bool EndDelivered { get; set; }
        /// <summary>(exit, input offset the guest had after it): input is committed once that exit's log is everywhere.</summary>
        public List<(long Exit, long Offset)> InputMarks { get; } = [];
        public long InputCommitted { get; set; }

        /// <summary>The guest's bytes, from what the front end acknowledged.</summary>
        public ByteWindow Output { get; } = new();
        /// <summary>(exit, output end after it): output is released once that exit's log is everywhere.</summary>
        public List<(long Exit, long Offset)> OutputMarks { get; } = [];
        public long Released { get; set; }
        /// <summary>0 open; 1 the guest shut down sending; 2 it closed.</summary>
        public int GuestEnd { get; set; }
        public long GuestEndExit { get; set; }

        public long SentToFrontEnd { get; set; }
        public long FrontEndAcked { get; set; }
        public bool FrontEndAckedEnd { get; set; }
        public bool FrontEndGone { get; set; }
        public bool EndSent { get; set; }
        public long LastFrontEndProgressMs { get; set; }
        public bool ResyncPending { get; set; }
        public long StateReceivedSent { get; set; } = -1;
        public long StateCommittedSent { get; set; } = -1;
        public long StateSentMs { get; set; }
    }
}
