using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using P2PReplay.Cluster.Vms;
using P2PReplay.Consensus;
using P2PReplay.Consensus.Storage;
using P2PReplay.Daemon;
using P2PReplay.Discovery.Gossip;
using P2PReplay.Discovery.Mdns;
using P2PReplay.Transport;

namespace P2PReplay.Cluster;

/// <summary>
/// One daemon's membership in the cluster: its identity, the encrypted peer network, gossip, mDNS and Raft.
/// Gossip, Raft and the cluster state are touched only by one loop (<see cref="RunLoopAsync"/>): network input,
/// control requests and clock ticks are all queued to it, so the pure cores never see two threads.
/// </summary>
internal sealed partial class ClusterNode : IClusterControl, IAsyncDisposable
{
    /// <summary>Raft timing in loop ticks (25 ms by default): heartbeat every tick, elections after 6-12 ticks.</summary>
    private const int ElectionTicks = 6;
    private const int HeartbeatTicks = 1;
    private const int MaxVoters = 5;

    private readonly DaemonConfig config;
    private readonly ILoggerFactory loggers;
    private readonly ILogger logger;
    private readonly TimeProvider time;
    private readonly NodeIdentity identity;
    private readonly KnownPeers knownPeers;
    private readonly Channel<Action> inbox = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource stopping = new();
    private readonly ClusterState state = new();
    private readonly Random random = new();
    private Task? loop;
    /// <summary>A VM created before this process started cannot be run from scratch here (its run is elsewhere).</summary>
    private readonly long processStartUnixMs;
    private volatile NodeStatus status;

    // Owned by the loop once the node is in a cluster.
    private ClusterSecret? secret;
    private PeerNetwork? network;
    private PeerOutbox? outbox;
    private GossipNode? gossip;
    private RaftNode? raft;
    private FileRaftStorage? raftStorage;
    private ILanDiscovery? lan;
    private string advertisedAddress;

    private ClusterNode(DaemonConfig config, ILoggerFactory loggers, TimeProvider time, NodeIdentity identity)
    {
        this.config = config;
        this.loggers = loggers;
        logger = loggers.CreateLogger("p2preplay.cluster");
        this.time = time;
        this.identity = identity;
        knownPeers = new KnownPeers(config.DataDir);
        processStartUnixMs = time.GetUtcNow().ToUnixTimeMilliseconds();
        advertisedAddress = config.Advertise ?? DefaultAdvertisedAddress(config.Listen);
        status = new NodeStatus(identity.NodeId, advertisedAddress, config.Site, false, "none", null, 0, 0, 0, 0, []);
    }

    public string NodeId => identity.NodeId;

    /// <summary>Opens the data dir (creating the node key on first start) and, if this node was in a cluster, rejoins it.</summary>
    public static async Task<ClusterNode> StartAsync(DaemonConfig config, ILoggerFactory loggers, TimeProvider time, CancellationToken cancel)
    {
        Directory.CreateDirectory(config.DataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        var identity = NodeIdentity.LoadOrCreate(config.DataDir);
        var node = new ClusterNode(config, loggers, time, identity);
        var secret = ClusterSecret.Load(config.DataDir);
        if (secret is not null)
        {
            await node.StartFabricAsync(secret, bootstrap: false, [.. config.Seeds, .. node.knownPeers.Load()], cancel).ConfigureAwait(false);
        }
        node.loop = Task.Run(node.RunLoopAsync, CancellationToken.None);
        node.Post(node.PublishStatus);
        return node;
    }

    public NodeStatus Status() => status;

    public Task<string> InitAsync(bool includeSeeds, CancellationToken cancel) => Call(async () =>
    {
        if (secret is not null) throw new ClusterException("this node is already a member of a cluster");
        var created = ClusterSecret.Create();
        created.Save(config.DataDir);
        await StartFabricAsync(created, bootstrap: true, config.Seeds, cancel).ConfigureAwait(false);
        ClusterLog.ClusterCreated(logger);
        return new JoinToken(created, includeSeeds ? [advertisedAddress] : []).Encode();
    });

    public Task JoinAsync(string token, CancellationToken cancel) => Call(async () =>
    {
        JoinToken parsed;
        try
        {
            parsed = JoinToken.Parse(token.Trim());
        }
        catch (FormatException e)
        {
            throw new ClusterException($"invalid join token: {e.Message}", 400);
        }
        if (secret is not null)
        {
            if (!secret.SameAs(parsed.Secret)) throw new ClusterException("this node is already a member of another cluster");
            gossip!.Join(parsed.Seeds, NowMs);
            return true;
        }
        parsed.Secret.Save(config.DataDir);
        string[] seeds = [.. parsed.Seeds, .. config.Seeds];
        knownPeers.Save(parsed.Seeds);
        await StartFabricAsync(parsed.Secret, bootstrap: false, seeds, cancel).ConfigureAwait(false);
        ClusterLog.ClusterJoined(logger, seeds.Length, string.Join(", ", seeds));
        return true;
    });

    /// <summary>Runs the action on the loop and returns its result (control requests use this).</summary>
    private Task<T> Call<T>(Func<Task<T>> action)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try
            {
                // Fabric start-up awaits only the listener bind, which completes at once; block the loop for it.
                done.SetResult(action().GetAwaiter().GetResult());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        });
        return done.Task;
    }

    private void Post(Action action)
    {
        if (!inbox.Writer.TryWrite(action)) throw new ClusterException("the node is shutting down", 503);
    }

    private long NowMs => (long)time.GetElapsedTime(0).TotalMilliseconds;

    private static string DefaultAdvertisedAddress(IPEndPoint listen)
    {
        if (!listen.Address.Equals(IPAddress.Any) && !listen.Address.Equals(IPAddress.IPv6Any)) return PeerAddress.Format(listen);
        // Listening everywhere: advertise the first address of an interface that is up and not loopback.
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.OperationalStatus != OperationalStatus.Up || nic.NetworkInterfaceType == NetworkInterfaceType.Loopback) continue;
            foreach (var address in nic.GetIPProperties().UnicastAddresses)
            {
                if (address.Address.AddressFamily == AddressFamily.InterNetwork) return PeerAddress.Format(new IPEndPoint(address.Address, listen.Port));
            }
        }
        return PeerAddress.Format(new IPEndPoint(IPAddress.Loopback, listen.Port));
    }

    public async ValueTask DisposeAsync()
    {
        inbox.Writer.TryComplete();
        await stopping.CancelAsync().ConfigureAwait(false);
        if (loop is not null)
        {
            try
            {
                await loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
        lan?.Dispose();
        frontEnd?.Dispose();
        vms?.Dispose();
        images?.Dispose();
        if (outbox is not null) await outbox.DisposeAsync().ConfigureAwait(false);
        if (network is not null) await network.DisposeAsync().ConfigureAwait(false);
        raftStorage?.Dispose();
        identity.Dispose();
        stopping.Dispose();
    }
}
