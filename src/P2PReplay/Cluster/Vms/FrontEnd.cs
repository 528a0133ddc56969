using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace P2PReplay.Cluster.Vms;

/// <summary>
/// This daemon's front end for exposed guest ports: for every VM created with --expose it listens on the host port,
/// and relays each client connection to the VM's current primary with byte offsets in both directions. It holds a
/// client's bytes until the primary says they are logged at every replica, so when the primary dies the new one gets
/// whatever it lacks, and it asks the new primary to resume the guest's bytes right after what the client already
/// got: the client sees neither a break, nor a lost byte, nor a repeated one.
/// </summary>
internal sealed class FrontEnd : IDisposable
{
    private const int ReadBytes = 64 * 1024;
    /// <summary>Client bytes held while the primary has not committed them; the client waits beyond this.</summary>
    private const long MaxHeldInput = 8 << 20;
    private const long MaxInputInFlight = 1 << 20;
    private const long ResendAfterMs = 300;
    private const long ReopenAfterMs = 500;
    private const long OpenRetryMs = 50;
    private const long GoneForgetMs = 2000;

    private readonly VmNetLink link;
    private readonly IPAddress bindAddress;
    private readonly ILogger logger;
    private readonly Func<long> nowMs;
    private readonly Func<long> newConnectionId;
    private readonly object gate = new();
    private readonly Dictionary<string, ExposedVm> vms = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim wake = new(0);
    private readonly CancellationTokenSource stopping = new();
    private readonly Task pump;

    public FrontEnd(VmNetLink link, IPAddress bindAddress, ILogger logger, Func<long> nowMs, Func<long> newConnectionId)
    {
        this.link = link;
        this.bindAddress = bindAddress;
        this.logger = logger;
        this.nowMs = nowMs;
        this.newConnectionId = newConnectionId;
        pump = Task.Run(PumpAsync);
    }

    /// <summary>What this front end serves, for status.</summary>
    public IReadOnlyList<(string Vm, int GuestPort, int HostPort, bool Listening, int Clients)> Served()
    {
        lock (gate)
        {
            return [.. vms.Values.SelectMany(v => v.Ports.Select(p => (v.Vm, p.GuestPort, p.HostPort, v.Listeners.ContainsKey(p.HostPort), v.Clients.Values.Count(c => c.GuestPort == p.GuestPort))))];
        }
    }

    /// <summary>Follows the placement table (cluster loop): listen for exposed VMs, route to their current primary.</summary>
    public void Reconcile(IReadOnlyCollection<Placement> placements, Func<string, string?> addressOf)
    {
        lock (gate)
        {
            var wanted = placements.Where(p => p.Spec?.Expose is { Count: > 0 }).ToDictionary(p => p.Vm, StringComparer.Ordinal);
            foreach (var gone in vms.Keys.Where(name => !wanted.ContainsKey(name)).ToList())
            {
                vms[gone].Close();
                vms.Remove(gone);
            }
            foreach (var placement in wanted.Values)
            {
                if (!vms.TryGetValue(placement.Vm, out var exposed))
                {
                    exposed = new ExposedVm(placement.Vm, placement.Spec!.Expose!);
                    vms[placement.Vm] = exposed;
                }
                string? address = addressOf(placement.Primary);
                if (exposed.Epoch != placement.Epoch || exposed.Primary != placement.Primary || exposed.PrimaryAddress != address)
                {
                    exposed.Epoch = placement.Epoch;
                    exposed.Primary = placement.Primary;
                    exposed.PrimaryAddress = address;
                    // A new primary: every connection opens again there, saying how much it has of each stream.
                    foreach (var client in exposed.Clients.Values) client.NeedsOpen = true;
                }
                foreach (var port in exposed.Ports)
                {
                    if (exposed.Listeners.ContainsKey(port.HostPort)) continue;
                    try
                    {
                        var listener = new TcpListener(bindAddress, port.HostPort);
                        listener.Start(512);
                        exposed.Listeners[port.HostPort] = listener;
                        _ = AcceptLoopAsync(exposed, listener, port.GuestPort);
                        VmLog.Exposed(logger, exposed.Vm, port.GuestPort, Transport.PeerAddress.Format(new IPEndPoint(bindAddress, port.HostPort)));
                    }
                    catch (SocketException e)
                    {
                        if (exposed.ListenFailures.Add(port.HostPort)) VmLog.ExposeFailed(logger, exposed.Vm, port.HostPort, e.Message);
                    }
                }
            }
        }
        Wake();
    }

    private void Wake()
    {
        if (wake.CurrentCount == 0) wake.Release();
    }

    private async Task AcceptLoopAsync(ExposedVm exposed, TcpListener listener, int guestPort)
    {
        while (!exposed.Closing.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(exposed.Closing.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            socket.NoDelay = true;
            var remote = socket.RemoteEndPoint as IPEndPoint ?? new IPEndPoint(IPAddress.Any, 0);
            var address = remote.Address.IsIPv4MappedToIPv6 ? remote.Address.MapToIPv4() : remote.Address;
            var client = new Client(newConnectionId(), guestPort, address.GetAddressBytes(), remote.Port, socket);
            lock (gate)
            {
                if (exposed.Closing.IsCancellationRequested)
                {
                    socket.Dispose();
                    return;
                }
                exposed.Clients[client.Id] = client;
            }
            _ = ReadLoopAsync(exposed, client);
            _ = WriteLoopAsync(client);
            Wake();
        }
    }

    /// <summary>Client bytes: held (until committed) and sent to the primary by the pump.</summary>
    private async Task ReadLoopAsync(ExposedVm exposed, Client client)
    {
        byte[] buffer = new byte[ReadBytes];
        try
        {
            while (true)
            {
                while (true)
                {
                    lock (gate)
                    {
                        if (client.Input.End - client.Input.Start < MaxHeldInput) break;
                    }
                    await client.InputSpace.WaitAsync(TimeSpan.FromMilliseconds(100), exposed.Closing.Token).ConfigureAwait(false);
                }
                int read = await client.Socket.ReceiveAsync(buffer, SocketFlags.None, exposed.Closing.Token).ConfigureAwait(false);
                lock (gate)
                {
                    if (read == 0)
                    {
                        client.ClientEof = true;
                        break;
                    }
                    client.Input.Append(buffer.AsSpan(0, read));
                }
                Wake();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            lock (gate) client.MarkGone(nowMs());
        }
        Wake();
    }

    /// <summary>The guest's bytes to the client, in order; then its shutdown or close.</summary>
    private async Task WriteLoopAsync(Client client)
    {
        try
        {
            await foreach (var item in client.Outgoing.Reader.ReadAllAsync().ConfigureAwait(false))
            {
                if (item.End == 0)
                {
                    int written = 0;
                    while (written < item.Bytes.Length) written += await client.Socket.SendAsync(item.Bytes.AsMemory(written), SocketFlags.None).ConfigureAwait(false);
                    lock (gate) client.Delivered += written;
                }
                else
                {
                    if (item.End == 1) client.Socket.Shutdown(SocketShutdown.Send);
                    else client.Socket.Close();
                    lock (gate) client.EndDelivered = true;
                }
                Wake();
            }
        }
        catch (Exception e) when (e is ObjectDisposedException or SocketException or InvalidOperationException)
        {
            lock (gate) client.MarkGone(nowMs());
            Wake();
        }
    }

    /// <summary>A primary's message (network thread): only the placement's primary at its epoch is heard.</summary>
    public void OnMessage(string fromNodeId, NetMessage message)
    {
        NetMessage? reply = null;
        string? replyTo = null;
        lock (gate)
        {
            if (!vms.TryGetValue(message.Vm, out var exposed) || exposed.Primary != fromNodeId || exposed.Epoch != message.Epoch) return;
            if (!exposed.Clients.TryGetValue(message.Connection, out var client) || client.Gone)
            {
                // Nobody to deliver to: say so, so the primary stops holding this output.
                if (message.Type is NetMessageType.Output or NetMessageType.OutputEnd)
                {
                    reply = new NetMessage(NetMessageType.OutputAck, message.Vm, message.Epoch, message.Connection, message.Offset + (ulong)message.Data.Length, 3, 0, ReadOnlyMemory<byte>.Empty);
                    replyTo = exposed.PrimaryAddress;
                }
            }
            else
            {
                switch (message.Type)
                {
                    case NetMessageType.State:
                        long received = (long)message.Offset;
                        if (received > client.PrimaryReceived) client.LastInputProgressMs = nowMs();
                        client.PrimaryReceived = received;
                        if ((message.Port & 1) != 0)
                        {
                            // The primary's answer to Open: resend from what it has.
                            if (received < client.Input.Start)
                            {
                                Abort(exposed, client);
                                break;
                            }
                            client.SentInput = Math.Min(received, client.Input.End);
                            client.OpenPending = false;
                            client.LastInputProgressMs = nowMs();
                        }
                        long committed = Math.Min((long)message.Aux, client.Input.End);
                        if (committed > client.Input.Start)
                        {
                            client.Input.DropBefore(committed);
                            if (client.InputSpace.CurrentCount == 0) client.InputSpace.Release();
                        }
                        client.PrimaryHasEnd = (message.Port & 2) != 0;
                        client.LastStateMs = nowMs();
                        break;
                    case NetMessageType.Output:
                        long at = (long)message.Offset;
                        long end = at + message.Data.Length;
                        if (at <= client.QueuedOutput && end > client.QueuedOutput && !client.EndQueued)
                        {
                            client.Outgoing.Writer.TryWrite(new OutputItem(message.Data[(int)(client.QueuedOutput - at)..].ToArray(), 0));
                            client.QueuedOutput = end;
                        }
                        break;
                    case NetMessageType.OutputEnd:
                        if ((long)message.Offset == client.QueuedOutput && !client.EndQueued && message.Aux is 1 or 2)
                        {
                            client.Outgoing.Writer.TryWrite(new OutputItem([], (int)message.Aux));
                            client.EndQueued = true;
                            if (message.Aux == 2) client.Outgoing.Writer.TryComplete();
                        }
                        break;
                    case NetMessageType.Reset:
                        Abort(exposed, client);
                        break;
                }
            }
        }
        if (reply is not null && replyTo is not null) _ = link.SendAsync(replyTo, reply, stopping.Token).AsTask();
        Wake();
    }

    /// <summary>The connection cannot continue: reset the client (not a clean close, so it knows).</summary>
    private static void Abort(ExposedVm exposed, Client client)
    {
        try
        {
            client.Socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        client.Socket.Dispose();
        client.Outgoing.Writer.TryComplete();
        exposed.Clients.Remove(client.Id);
    }

    private async Task PumpAsync()
    {
        var cancel = stopping.Token;
        while (!cancel.IsCancellationRequested)
        {
            try
            {
                await wake.WaitAsync(TimeSpan.FromMilliseconds(20), cancel).ConfigureAwait(false);
                var batch = new List<(string Address, NetMessage Message)>();
                lock (gate)
                {
                    foreach (var exposed in vms.Values) Step(exposed, batch);
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

    /// <summary>One round for one VM (under the lock): opens, input, acknowledgements, resends.</summary>
    private void Step(ExposedVm exposed, List<(string, NetMessage)> batch)
    {
        if (exposed.PrimaryAddress is not { } primary) return;
        long now = nowMs();
        NetMessage Message(NetMessageType type, Client c, long offset, ulong aux = 0, int port = 0, ReadOnlyMemory<byte> data = default) =>
            new(type, exposed.Vm, exposed.Epoch, c.Id, (ulong)offset, aux, port, data);
        foreach (var client in exposed.Clients.Values.ToList())
        {
            if (client.Gone)
            {
                if (now - client.GoneSinceMs > GoneForgetMs)
                {
                    exposed.Clients.Remove(client.Id);
                    client.Socket.Dispose();
                }
                else if (now - client.LastGoneSentMs >= ResendAfterMs)
                {
                    batch.Add((primary, Message(NetMessageType.OutputAck, client, client.QueuedOutput, 2)));
                    client.LastGoneSentMs = now;
                }
                continue;
            }
            if (client.EndDelivered && client.EndQueued && client.AckedSent == client.Delivered && client.EndAckSent)
            {
                if (client.Outgoing.Reader.Completion.IsCompleted || client.ClientEof)
                {
                    exposed.Clients.Remove(client.Id);
                    client.Socket.Dispose();
                    continue;
                }
            }
            if (client.NeedsOpen || (client.OpenPending && now - client.LastOpenMs > OpenRetryMs)
                || (now - client.LastStateMs > ReopenAfterMs && now - client.LastOpenMs > ReopenAfterMs))
            {
                byte[] peer = [.. client.Address, (byte)client.PeerPort, (byte)(client.PeerPort >> 8)];
                batch.Add((primary, Message(NetMessageType.Open, client, client.QueuedOutput, (ulong)client.Input.Start, client.GuestPort, peer)));
                client.NeedsOpen = false;
                client.OpenPending = true;
                client.LastOpenMs = now;
                // Until the primary answers, send nothing more: it says where to resume.
                client.SentInput = Math.Max(client.Input.Start, Math.Min(client.SentInput, client.PrimaryReceived));
                continue;
            }
            if (client.SentInput > client.PrimaryReceived && now - client.LastInputProgressMs > ResendAfterMs)
            {
                client.SentInput = Math.Max(client.Input.Start, client.PrimaryReceived);
                client.LastInputProgressMs = now;
            }
            client.SentInput = Math.Max(client.SentInput, client.Input.Start);
            while (client.SentInput < client.Input.End && client.SentInput - client.PrimaryReceived < MaxInputInFlight)
            {
                byte[] bytes = client.Input.Read(client.SentInput, NetMessage.MaxDataBytes);
                batch.Add((primary, Message(NetMessageType.Input, client, client.SentInput, data: bytes)));
                client.SentInput += bytes.Length;
            }
            if (client.ClientEof && !client.PrimaryHasEnd && client.SentInput == client.Input.End && now - client.LastEndSentMs >= ResendAfterMs)
            {
                batch.Add((primary, Message(NetMessageType.InputEnd, client, client.Input.End)));
                client.LastEndSentMs = now;
            }
            bool endAck = client.EndDelivered && client.Delivered == client.QueuedOutput;
            if (client.Delivered > client.AckedSent || endAck && !client.EndAckSent)
            {
                batch.Add((primary, Message(NetMessageType.OutputAck, client, client.Delivered, endAck ? 1UL : 0)));
                client.AckedSent = client.Delivered;
                client.EndAckSent = endAck;
            }
        }
    }

    public void Dispose()
    {
        stopping.Cancel();
        lock (gate)
        {
            foreach (var exposed in vms.Values) exposed.Close();
            vms.Clear();
        }
        try
        {
            pump.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
    }

    private readonly record struct OutputItem(byte[] Bytes, int End);

    private sealed class ExposedVm(string vm, IReadOnlyList<ExposedPort> ports)
    {
        public string Vm { get; } = vm;
        public IReadOnlyList<ExposedPort> Ports { get; } = ports;
        public ulong Epoch { get; set; }
        public string Primary { get; set; } = "";
        public string? PrimaryAddress { get; set; }
        public Dictionary<int, TcpListener> Listeners { get; } = [];
        public HashSet<int> ListenFailures { get; } = [];
        public Dictionary<long, Client> Clients { get; } = [];
        public CancellationTokenSource Closing { get; } = new();

        public void Close()
        {
            Closing.Cancel();
            foreach (var listener in Listeners.Values) listener.Stop();
            foreach (var client in Clients.Values)
            {
                client.Outgoing.Writer.TryComplete();
                client.Socket.Dispose();
            }
            Clients.Clear();
        }
    }

    private sealed class Client(long id, int guestPort, byte[] address, int peerPort, Socket socket)
    {
        public long Id { get; } = id;
        public int GuestPort { get; } = guestPort;
        public byte[] Address { get; } = address;
        public int PeerPort { get; } = peerPort;
        public Socket Socket { get; } = socket;

        /// <summary>The client's bytes from the first the primary has not committed.</summary>
        public ByteWindow Input { get; } = new();
        public SemaphoreSlim InputSpace { get; } = new(0);
        public long SentInput { get; set; }
        public long PrimaryReceived { get; set; }
        public long LastInputProgressMs { get; set; }
        public bool ClientEof { get; set; }
        public bool PrimaryHasEnd { get; set; }
        public long LastEndSentMs { get; set; }

        public Channel<OutputItem> Outgoing { get; } = Channel.CreateUnbounded<OutputItem>(new UnboundedChannelOptions { SingleReader = true });
        /// <summary>The guest's bytes received (queued for the client) and written to it.</summary>
        public long QueuedOutput { get; set; }
        public long Delivered { get; set; }
        public bool EndQueued { get; set; }
        public bool EndDelivered { get; set; }
        public long AckedSent { get; set; }
        public bool EndAckSent { get; set; }

        public bool NeedsOpen { get; set; } = true;
        /// <summary>An Open is not answered yet: ask again soon (the primary may only now be learning its role).</summary>
        public bool OpenPending { get; set; }
        public long LastOpenMs { get; set; }
        public long LastStateMs { get; set; }

        public bool Gone { get; private set; }
        public long GoneSinceMs { get; private set; }
        public long LastGoneSentMs { get; set; }

        public void MarkGone(long now)
        {
            if (Gone) return;
            Gone = true;
            GoneSinceMs = now;
        }
    }
}
