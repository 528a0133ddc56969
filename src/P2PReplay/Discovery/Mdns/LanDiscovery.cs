namespace P2PReplay.Discovery.Mdns;

/// <summary>A p2preplay daemon found on the local network: where to dial it and who it says it is.</summary>
internal sealed record LanPeer(string NodeId, string Address, string Site);

/// <summary>Finds other daemons on the LAN (mDNS in the product, a fake in tests).</summary>
internal interface ILanDiscovery : IDisposable
{
    /// <summary>Raised (on any thread) each time a peer answers; the same peer is reported again on later answers.</summary>
    event Action<LanPeer>? PeerFound;

    void Start();

    /// <summary>Asks the network again (peers that started later answer now).</summary>
    void Query();
}
