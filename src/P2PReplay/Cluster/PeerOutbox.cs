using System.Collections.Concurrent;
using System.Threading.Channels;
using P2PReplay.Transport;

namespace P2PReplay.Cluster;

/// <summary>
/// Lets the cluster loop send without waiting: one bounded queue and one sender per peer address, so a peer that
/// is slow to connect delays neither the loop nor the other peers. A full queue drops its oldest frame (gossip and
/// Raft both retransmit), never blocks.
/// </summary>
internal sealed class PeerOutbox(PeerNetwork network, int capacityPerPeer = 1024) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Channel<(ChannelKind Kind, byte[] Payload)>> queues = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentBag<Task> senders = [];
    private readonly CancellationTokenSource stopping = new();

    public void Send(string address, ChannelKind kind, byte[] payload)
    {
        if (stopping.IsCancellationRequested) return;
        var queue = queues.GetOrAdd(address, Create);
        queue.Writer.TryWrite((kind, payload));
    }

    private Channel<(ChannelKind, byte[])> Create(string address)
    {
        var queue = Channel.CreateBounded<(ChannelKind, byte[])>(new BoundedChannelOptions(capacityPerPeer)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
        });
        senders.Add(Task.Run(() => DrainAsync(address, queue.Reader)));
        return queue;
    }

    private async Task DrainAsync(string address, ChannelReader<(ChannelKind Kind, byte[] Payload)> reader)
    {
        try
        {
            await foreach (var (kind, payload) in reader.ReadAllAsync(stopping.Token).ConfigureAwait(false))
            {
                // Best effort: PeerNetwork counts and logs what it drops.
                await network.SendAsync(address, kind, payload, compress: false, stopping.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        foreach (var queue in queues.Values) queue.Writer.TryComplete();
        await Task.WhenAll(senders).ConfigureAwait(false);
        stopping.Dispose();
    }
}
