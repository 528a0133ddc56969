using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace P2PReplay.Transport;

/// <summary>Everything the transport needs: who we are, the cluster secret, limits, clock, randomness, logging and counters.</summary>
internal sealed class PeerContext
{
    public PeerContext(NodeIdentity identity, ClusterSecret secret, TransportOptions? options = null, TimeProvider? time = null, ISecureRandom? random = null, ILogger? logger = null)
    {
        Identity = identity;
        Secret = secret;
        Options = options ?? new TransportOptions();
        Time = time ?? TimeProvider.System;
        Random = random ?? SystemSecureRandom.Instance;
        Logger = logger ?? NullLogger.Instance;
        ReplayCache = new HandshakeReplayCache(Options.ReplayCacheCapacity, Options.MaxClockSkew, Time);
    }

    public NodeIdentity Identity { get; }

    public ClusterSecret Secret { get; }

    public TransportOptions Options { get; }

    public TimeProvider Time { get; }

    public ISecureRandom Random { get; }

    public ILogger Logger { get; }

    public HandshakeReplayCache ReplayCache { get; }

    public TransportCounters Counters { get; } = new();
}
