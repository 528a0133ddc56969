using System.Net;
using P2PReplay.Cluster.Images;
using P2PReplay.Replay;
using P2PReplay.Tests.Transport;
using P2PReplay.Transport;

namespace P2PReplay.Tests.Images;

/// <summary>Image transfers between ImageServices over real peer networks on loopback (no daemons, no KVM).</summary>
public sealed class ImageTransferTests : IAsyncDisposable
{
    private static readonly IPEndPoint AnyLoopbackPort = new(IPAddress.Loopback, 0);
    private readonly string scratch = Directory.CreateTempSubdirectory("p2preplay-imagetransfer-").FullName;
    private readonly List<IAsyncDisposable> networks = [];
    private readonly List<ImageService> services = [];

    public async ValueTask DisposeAsync()
    {
        foreach (var service in services) service.Dispose();
        foreach (var network in networks) await network.DisposeAsync();
        ImageStore.ForceDelete(scratch);
    }

    private (ImageService Service, PeerNetwork Network, string NodeId) Node(int seed, CapturingLogger? log = null)
    {
        ImageService? service = null;
        var context = TestNodes.Context(seed);
        var network = new PeerNetwork(context, (m, _) =>
        {
            if (m.Kind == ChannelKind.Image) service!.OnMessage(m);
            return ValueTask.CompletedTask;
        });
        network.Start(AnyLoopbackPort);
        networks.Add(network);
        service = new ImageService(new ImageStore(Path.Combine(scratch, $"node{seed}")), network, log ?? new CapturingLogger())
        {
            IdleTimeout = TimeSpan.FromSeconds(2),
            RetryDelay = TimeSpan.FromMilliseconds(50),
        };
        services.Add(service);
        return (service, network, context.Identity.NodeId);
    }

    /// <summary>A peer that answers every image request with the given messages (a hostile or broken holder).</summary>
    private (PeerNetwork Network, string NodeId) Liar(int seed, Func<ulong, IEnumerable<ImageMessage>> answer)
    {
        PeerNetwork? network = null;
        var context = TestNodes.Context(seed);
        network = new PeerNetwork(context, async (m, _) =>
        {
            if (m.Kind != ChannelKind.Image) return;
            var request = ImageMessage.Decode(m.Payload);
            foreach (var reply in answer(request.Transfer)) await network!.SendAsync(m.RemoteAddress, ChannelKind.Image, reply.Encode());
        });
        network.Start(AnyLoopbackPort);
        networks.Add(network);
        return (network, context.Identity.NodeId);
    }

    [Fact]
    public async Task A_node_fetches_an_image_by_hash_past_a_node_without_it_and_verifies_it()
    {
        var holder = Node(1);
        var without = Node(2);
        var fetcher = Node(3);
        string source = ImageStoreTests.MakeTree(scratch, dataBytes: 1_300_000); // five data chunks
        string hash = holder.Service.Store.Import(source);

        string root = await fetcher.Service.Acquire(hash, [(without.NodeId, without.Network.AdvertisedAddress), (holder.NodeId, holder.Network.AdvertisedAddress)])
            .WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(Path.Combine(scratch, "node3", hash), root);
        Assert.Equal(hash, ImageHash.Compute(root));
        Assert.Equal(File.ReadAllBytes(Path.Combine(source, "data", "values.txt")), File.ReadAllBytes(Path.Combine(root, "data", "values.txt")));
        Assert.Null(fetcher.Service.Status(hash));
        // Once held, asking again costs no transfer.
        Assert.Equal(root, await fetcher.Service.Acquire(hash, []).WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Null(without.Service.Store.Find(hash));
    }

    [Fact]
    public async Task Hostile_or_broken_senders_are_refused_and_the_fetch_moves_on()
    {
        var log = new CapturingLogger();
        var holder = Node(1);
        var fetcher = Node(3, log);
        string source = ImageStoreTests.MakeTree(scratch);
        string hash = holder.Service.Store.Import(source);
        var traversal = Liar(4, id => [ImageMessage.EntryOf(id, new ImageEntry("../../escaped", ImageEntryKind.File, 0x1A4, 3)), ImageMessage.DataOf(id, "bad"u8.ToArray()), ImageMessage.EndOf(id, 1, 3)]);
        var wrongContent = Liar(5, id => [ImageMessage.EntryOf(id, new ImageEntry("file", ImageEntryKind.File, 0x1A4, 3)), ImageMessage.DataOf(id, "bad"u8.ToArray()), ImageMessage.EndOf(id, 1, 3)]);
        var lostFrame = Liar(6, id => [ImageMessage.EntryOf(id, new ImageEntry("file", ImageEntryKind.File, 0x1A4, 3)), ImageMessage.EndOf(id, 1, 3)]);
        var silent = Liar(7, _ => []);

        string root = await fetcher.Service.Acquire(hash,
            [(traversal.NodeId, traversal.Network.AdvertisedAddress), (wrongContent.NodeId, wrongContent.Network.AdvertisedAddress),
             (lostFrame.NodeId, lostFrame.Network.AdvertisedAddress), (silent.NodeId, silent.Network.AdvertisedAddress),
             (holder.NodeId, holder.Network.AdvertisedAddress)]).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(hash, ImageHash.Compute(root));
        Assert.False(File.Exists(Path.Combine(scratch, "escaped")));
        Assert.False(File.Exists(Path.Combine(scratch, "node3", "escaped")));
        string failures = string.Join("\n", log.Lines.Select(l => l.Message));
        Assert.Contains($"fetch from {traversal.NodeId} failed", failures, StringComparison.Ordinal);
        Assert.Contains("hashes to", failures, StringComparison.Ordinal);
        Assert.True(failures.Contains("shorter than announced", StringComparison.Ordinal), failures);
        Assert.Contains($"{silent.NodeId} sent nothing", failures, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(scratch, "node3", ".tmp")));
    }

    [Fact]
    public async Task Without_a_holder_the_fetch_is_reported_and_retried_until_one_appears()
    {
        var fetcher = Node(3);
        var later = Node(1);
        string source = ImageStoreTests.MakeTree(scratch);
        string hash = ImageHash.Compute(source);
        var fetch = fetcher.Service.Acquire(hash, [(later.NodeId, later.Network.AdvertisedAddress)]);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (fetcher.Service.Status(hash) is not { } status || !status.Contains("does not hold", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, $"no failure reported: {fetcher.Service.Status(hash)}");
            await Task.Delay(20);
        }
        Assert.False(fetch.IsCompleted);
        Assert.StartsWith("fetching image (attempt ", fetcher.Service.Status(hash), StringComparison.Ordinal);
        later.Service.Store.Import(source);
        Assert.Equal(hash, ImageHash.Compute(await fetch.WaitAsync(TimeSpan.FromSeconds(20))));
    }

    [Fact]
    public async Task A_fetch_no_copy_waits_for_any_more_stops_and_a_new_request_starts_afresh()
    {
        var fetcher = Node(3);
        var empty = Node(1);
        string source = ImageStoreTests.MakeTree(scratch);
        string hash = ImageHash.Compute(source);
        var fetch = fetcher.Service.Acquire(hash, [(empty.NodeId, empty.Network.AdvertisedAddress)]);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (fetcher.Service.Status(hash) is not { } status || !status.Contains("attempt", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "the fetch never tried");
            await Task.Delay(20);
        }
        fetcher.Service.KeepFetching(new HashSet<string>());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fetch.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Null(fetcher.Service.Status(hash));
        // Wanted again (a new VM with the same image): a new fetch, which succeeds once a holder appears.
        empty.Service.Store.Import(source);
        var again = fetcher.Service.Acquire(hash, [(empty.NodeId, empty.Network.AdvertisedAddress)]);
        fetcher.Service.KeepFetching(new HashSet<string> { hash });
        Assert.Equal(hash, ImageHash.Compute(await again.WaitAsync(TimeSpan.FromSeconds(20))));
    }
}
