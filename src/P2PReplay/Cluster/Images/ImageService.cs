using System.Diagnostics;
using Microsoft.Extensions.Logging;
using P2PReplay.Transport;

namespace P2PReplay.Cluster.Images;

/// <summary>Log lines of the image store and transfers (source-generated).</summary>
internal static partial class ImageLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "image {Hash}: imported from {Source}, hash verified")]
    public static partial void Imported(ILogger logger, string hash, string source);

    [LoggerMessage(Level = LogLevel.Information, Message = "image {Hash}: fetched from {Node} ({Entries} entries, {Bytes} bytes, {Milliseconds} ms), hash verified")]
    public static partial void Fetched(ILogger logger, string hash, string node, int entries, long bytes, long milliseconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "image {Hash}: fetch from {Node} failed (attempt {Attempt}): {Reason}")]
    public static partial void FetchFailed(ILogger logger, string hash, string node, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "image {Hash}: sent to {Node} ({Entries} entries, {Bytes} bytes)")]
    public static partial void Served(ILogger logger, string hash, string node, int entries, long bytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "image {Hash}: cannot send it to {Node}: {Reason}")]
    public static partial void ServeFailed(ILogger logger, string hash, string node, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "dropped an image message from {Node}: {Reason}")]
    public static partial void Dropped(ILogger logger, string node, string reason);
}

/// <summary>
/// Moves images between daemons by hash over the peer transport (ChannelKind.Image): serves the images this node
/// holds to any member that asks, and fetches the ones its VM copies need, trying each candidate in turn and
/// retrying with backoff until one delivers a tree whose hash verifies. A failed fetch is reported through
/// <see cref="Status"/>, never thrown at the copy that waits for it.
/// </summary>
internal sealed class ImageService(ImageStore store, PeerNetwork network, ILogger logger) : IDisposable
{
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim serving = new(2);
    private readonly Lock gate = new();
    private readonly Dictionary<string, Fetch> fetches = new(StringComparer.Ordinal);
    private readonly Dictionary<ulong, Incoming> incoming = [];
    private long nextTransfer = Random.Shared.NextInt64(1, long.MaxValue / 2);

    public ImageStore Store => store;

    /// <summary>A transfer fails when its sender says nothing for this long.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Test fault injection (P2PREPLAY_FAILPOINTS=image-serve-refuse): this node refuses every image request,
    /// so the nodes that need an image from it keep failing, report it and retry.</summary>
    public bool RefuseToServe { get; init; }

    /// <summary>Pause after trying every candidate once (doubles each round up to 10 s).</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    private sealed class Fetch(string hash)
    {
        public string Hash { get; } = hash;
        public TaskCompletionSource<string> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public CancellationTokenSource Unwanted { get; } = new();
        public List<(string NodeId, string Address)> Sources { get; set; } = [];
        public int Attempts { get; set; }
        public string? Error { get; set; }
    }

    private sealed class Incoming(string nodeId, ImageWriter writer)
    {
        public string NodeId { get; } = nodeId;
        public ImageWriter Writer { get; } = writer;
        public TaskCompletionSource Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public long LastHeard { get; set; } = Stopwatch.GetTimestamp();
        public bool Closed { get; set; }
    }

    /// <summary>
    /// The image's root in the local store, once present and verified (fetched from the sources if needed; the
    /// task completes only on success, or is canceled when the service stops). Does no I/O on the caller's thread.
    /// Calling again while a fetch runs updates its sources.
    /// </summary>
    public Task<string> Acquire(string hash, IReadOnlyList<(string NodeId, string Address)> sources)
    {
        Fetch fetch;
        lock (gate)
        {
            if (fetches.TryGetValue(hash, out var running) && !running.Unwanted.IsCancellationRequested)
            {
                if (sources.Count > 0) running.Sources = [.. sources];
                return running.Done.Task;
            }
            fetch = new Fetch(hash) { Sources = [.. sources] };
            fetches[hash] = fetch;
        }
        _ = Task.Run(() => FetchLoopAsync(fetch));
        return fetch.Done.Task;
    }

    /// <summary>The image a VM copy needs (null: the VM has none), asked first of the node that imported it, then of
    /// the placement's other nodes. Without an image service the task fails (the copy reports it).</summary>
    public static Task<string>? AcquireFor(ImageService? service, Placement placement, string selfId, Func<string, string?> addressOf)
    {
        if (placement.Spec?.ImageHash is not { } hash) return null;
        if (service is null) return Task.FromException<string>(new ImageException("this node has no image store"));
        var sources = new[] { placement.Spec.ImageSource, placement.Primary }.Concat(placement.Replicas).OfType<string>()
            .Where(id => id != selfId).Distinct(StringComparer.Ordinal)
            .Select(id => (NodeId: id, Address: addressOf(id))).Where(s => s.Address is not null).Select(s => (s.NodeId, s.Address!)).ToList();
        return service.Acquire(hash, sources);
    }

    /// <summary>Stops the fetches of images no local copy waits for any more (their VM was stopped or moved away).</summary>
    public void KeepFetching(IReadOnlySet<string> hashes)
    {
        lock (gate)
        {
            foreach (var fetch in fetches.Values)
            {
                if (!hashes.Contains(fetch.Hash)) fetch.Unwanted.Cancel();
            }
        }
    }

    /// <summary>What this node is doing about an image it lacks ("fetching ..."), or null when it is not fetching it.</summary>
    public string? Status(string hash)
    {
        lock (gate)
        {
            if (!fetches.TryGetValue(hash, out var fetch) || fetch.Done.Task.IsCompleted) return null;
            return fetch.Attempts == 0 ? "fetching image" : $"fetching image (attempt {fetch.Attempts}{(fetch.Error is null ? "" : $"; last failure {fetch.Error}")})";
        }
    }

    private async Task FetchLoopAsync(Fetch fetch)
    {
        try
        {
            if (store.Find(fetch.Hash) is { } held)
            {
                fetch.Done.TrySetResult(held);
                return;
            }
            var delay = RetryDelay;
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token, fetch.Unwanted.Token);
            while (!cancel.IsCancellationRequested)
            {
                List<(string NodeId, string Address)> sources;
                lock (gate) sources = [.. fetch.Sources];
                foreach (var (node, address) in sources)
                {
                    lock (gate) fetch.Attempts++;
                    try
                    {
                        string root = await FetchFromAsync(fetch.Hash, node, address, cancel.Token).ConfigureAwait(false);
                        fetch.Done.TrySetResult(root);
                        return;
                    }
                    catch (Exception e) when (e is ImageException or IOException or UnauthorizedAccessException)
                    {
                        lock (gate) fetch.Error = $"from {node}: {e.Message}";
                        ImageLog.FetchFailed(logger, fetch.Hash, node, fetch.Attempts, e.Message);
                    }
                    if (store.Find(fetch.Hash) is { } arrived)
                    {
                        fetch.Done.TrySetResult(arrived);
                        return;
                    }
                }
                if (sources.Count == 0) lock (gate) fetch.Error = "no node to fetch it from";
                await Task.Delay(delay, cancel.Token).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            fetch.Done.TrySetCanceled();
            lock (gate)
            {
                // A fetch canceled as unwanted may have been replaced by a new one for the same image meanwhile.
                if (fetches.TryGetValue(fetch.Hash, out var current) && current == fetch) fetches.Remove(fetch.Hash);
            }
            fetch.Unwanted.Dispose();
        }
    }

    private async Task<string> FetchFromAsync(string hash, string node, string address, CancellationToken cancel)
    {
        long started = Stopwatch.GetTimestamp();
        ulong id = (ulong)Interlocked.Increment(ref nextTransfer);
        var transfer = new Incoming(node, store.BeginReceive(hash));
        lock (gate) incoming[id] = transfer;
        try
        {
            if (!await network.SendAsync(address, ChannelKind.Image, ImageMessage.Request(id, hash).Encode(), compress: false, cancel).ConfigureAwait(false))
                throw new ImageException($"cannot reach {address}");
            while (true)
            {
                var finished = await Task.WhenAny(transfer.Ended.Task, Task.Delay(TimeSpan.FromMilliseconds(200), cancel)).ConfigureAwait(false);
                if (finished == transfer.Ended.Task) break;
                cancel.ThrowIfCancellationRequested();
                long heard;
                lock (transfer) heard = transfer.LastHeard;
                if (Stopwatch.GetElapsedTime(heard) > IdleTimeout) throw new ImageException($"{node} sent nothing for {IdleTimeout.TotalSeconds:0.#} s");
            }
            await transfer.Ended.Task.ConfigureAwait(false);
            string root;
            lock (transfer)
            {
                transfer.Closed = true;
                root = transfer.Writer.Complete();
            }
            ImageLog.Fetched(logger, hash, node, transfer.Writer.Entries, transfer.Writer.Bytes, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return root;
        }
        finally
        {
            lock (gate) incoming.Remove(id);
            lock (transfer)
            {
                transfer.Closed = true;
                transfer.Writer.Dispose();
            }
        }
    }

    /// <summary>An Image channel frame from an authenticated member (network thread, one at a time per connection).</summary>
    public void OnMessage(PeerMessage message)
    {
        ImageMessage decoded;
        try
        {
            decoded = ImageMessage.Decode(message.Payload);
        }
        catch (ImageWireFormatException e)
        {
            ImageLog.Dropped(logger, message.RemoteNodeId, e.Message);
            if (message.Payload.Length >= 9 && Find(System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(message.Payload.Span[1..]), message.RemoteNodeId) is { } broken)
                Fail(broken, $"a malformed message: {e.Message}");
            return;
        }
        if (decoded.Type == ImageMessageType.Request)
        {
            _ = Task.Run(() => ServeAsync(message.RemoteNodeId, message.RemoteAddress, decoded.Transfer, decoded.Hash));
            return;
        }
        // Only the node asked may feed a transfer.
        if (Find(decoded.Transfer, message.RemoteNodeId) is not { } transfer) return;
        lock (transfer)
        {
            if (transfer.Closed) return;
            transfer.LastHeard = Stopwatch.GetTimestamp();
            try
            {
                switch (decoded.Type)
                {
                    case ImageMessageType.Entry:
                        transfer.Writer.Add(decoded.Entry!);
                        break;
                    case ImageMessageType.Data:
                        transfer.Writer.Write(decoded.Data.Span);
                        break;
                    case ImageMessageType.End:
                        if (decoded.Count != transfer.Writer.Entries || decoded.Bytes != transfer.Writer.Bytes)
                            throw new ImageException($"the transfer ended with {transfer.Writer.Entries} entries and {transfer.Writer.Bytes} bytes, the sender sent {decoded.Count} and {decoded.Bytes}");
                        transfer.Closed = true;
                        transfer.Ended.TrySetResult();
                        break;
                    case ImageMessageType.Error:
                        throw new ImageException($"refused: {decoded.Text}");
                }
            }
            catch (Exception e) when (e is ImageException or IOException or UnauthorizedAccessException)
            {
                Fail(transfer, e.Message);
            }
        }
    }

    private Incoming? Find(ulong id, string node)
    {
        lock (gate) return incoming.TryGetValue(id, out var transfer) && transfer.NodeId == node ? transfer : null;
    }

    private static void Fail(Incoming transfer, string why)
    {
        lock (transfer)
        {
            transfer.Closed = true;
            transfer.Ended.TrySetException(new ImageException(why));
        }
    }

    /// <summary>Streams an image this node holds: every entry, each file in bounded chunks, then the counts.</summary>
    private async Task ServeAsync(string node, string address, ulong id, string hash)
    {
        try
        {
            await serving.WaitAsync(stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        try
        {
            if (RefuseToServe)
            {
                await SendAsync(address, ImageMessage.ErrorOf(id, "failpoint image-serve-refuse")).ConfigureAwait(false);
                return;
            }
            if (store.Find(hash) is not { } root)
            {
                await SendAsync(address, ImageMessage.ErrorOf(id, "this node does not hold that image")).ConfigureAwait(false);
                return;
            }
            var entries = ImageRules.List(root);
            long bytes = 0;
            byte[] buffer = new byte[ImageMessage.MaxDataBytes];
            foreach (var entry in entries)
            {
                if (!await SendAsync(address, ImageMessage.EntryOf(id, entry)).ConfigureAwait(false)) return;
                if (entry.Kind != ImageEntryKind.File) continue;
                using var input = new FileStream(Path.Combine(root, entry.Path), FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous);
                long sent = 0;
                int read;
                while ((read = await input.ReadAsync(buffer, stopping.Token).ConfigureAwait(false)) > 0)
                {
                    sent += read;
                    if (sent > entry.Size) throw new ImageException($"{entry.Path} grew while being sent");
                    if (!await SendAsync(address, ImageMessage.DataOf(id, buffer.AsMemory(0, read))).ConfigureAwait(false)) return;
                }
                if (sent != entry.Size) throw new ImageException($"{entry.Path} shrank while being sent");
                bytes += sent;
            }
            if (await SendAsync(address, ImageMessage.EndOf(id, entries.Count, bytes)).ConfigureAwait(false))
                ImageLog.Served(logger, hash, node, entries.Count, bytes);
        }
        catch (Exception e) when (e is ImageException or IOException or UnauthorizedAccessException)
        {
            ImageLog.ServeFailed(logger, hash, node, e.Message);
            await SendAsync(address, ImageMessage.ErrorOf(id, e.Message)).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            serving.Release();
        }
    }

    private async Task<bool> SendAsync(string address, ImageMessage message)
    {
        try
        {
            return await network.SendAsync(address, ChannelKind.Image, message.Encode(), compress: message.Type == ImageMessageType.Data, stopping.Token).ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        stopping.Cancel();
        lock (gate)
        {
            foreach (var transfer in incoming.Values) Fail(transfer, "the daemon is stopping");
        }
    }
}
