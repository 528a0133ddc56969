using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using Makaretu.Dns;
using Microsoft.Extensions.Logging;

namespace P2PReplay.Discovery.Mdns;

/// <summary>
/// Advertises this daemon as `NODEID._p2preplay._tcp.local` (RFC 6762/6763) and browses for the others.
/// The TXT record carries the node id, peer port and site; the dialable address is the source address of the
/// answer unless the peer advertises an explicit one. Discovery only proposes addresses: the peer handshake
/// decides who is a member.
/// </summary>
internal sealed partial class MdnsDiscovery : ILanDiscovery
{
    public const string ServiceName = "_p2preplay._tcp";

    private readonly string nodeId;
    private readonly int port;
    private readonly string site;
    private readonly string? advertisedAddress;
    private readonly ILogger logger;
    private readonly Lock gate = new();
    private MulticastService? multicast;
    private ServiceDiscovery? discovery;
    private bool disposed;

    public event Action<LanPeer>? PeerFound;

    public MdnsDiscovery(string nodeId, int port, string site, string? advertisedAddress, ILogger logger)
    {
        this.nodeId = nodeId;
        this.port = port;
        this.site = site;
        this.advertisedAddress = advertisedAddress;
        this.logger = logger;
    }

    public void Start()
    {
        lock (gate)
        {
            StartLocked();
        }
        // The library enumerates interfaces only when it starts: start again when addresses change.
        NetworkChange.NetworkAddressChanged += OnAddressChanged;
    }

    private void StartLocked()
    {
        if (disposed) return;
        try
        {
            multicast = new MulticastService { UseIpv6 = false };
            discovery = new ServiceDiscovery(multicast) { AnswersContainsAdditionalRecords = true };
            var profile = new ServiceProfile(nodeId, ServiceName, (ushort)port);
            profile.AddProperty("id", nodeId);
            profile.AddProperty("port", port.ToString(CultureInfo.InvariantCulture));
            profile.AddProperty("site", site);
            if (advertisedAddress is not null) profile.AddProperty("addr", advertisedAddress);
            discovery.ServiceInstanceDiscovered += OnInstanceDiscovered;
            multicast.NetworkInterfaceDiscovered += (_, _) => discovery?.QueryServiceInstances(ServiceName);
            discovery.Advertise(profile);
            multicast.Start();
            discovery.Announce(profile);
            LogStarted(logger, ServiceName, port);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The library logs to a no-op logger; surface its failures here. The daemon runs on without mDNS.
            LogFailed(logger, e.Message);
        }
    }

    private void OnAddressChanged(object? sender, EventArgs e)
    {
        lock (gate)
        {
            StopLocked();
            StartLocked();
        }
    }

    public void Query()
    {
        lock (gate)
        {
            try
            {
                discovery?.QueryServiceInstances(ServiceName);
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or InvalidOperationException)
            {
                LogFailed(logger, e.Message);
            }
        }
    }

    private void OnInstanceDiscovered(object? sender, ServiceInstanceDiscoveryEventArgs e)
    {
        try
        {
            var peer = Parse(e.ServiceInstanceName, e.Message.Answers.Concat(e.Message.AdditionalRecords), e.RemoteEndPoint?.Address);
            if (peer is null || peer.NodeId == nodeId) return;
            PeerFound?.Invoke(peer);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogBadAnswer(logger, ex.Message);
        }
    }

    /// <summary>Reads a peer from the records of one answer; null when they do not describe a p2preplay daemon.</summary>
    internal static LanPeer? Parse(DomainName instance, IEnumerable<ResourceRecord> records, IPAddress? source)
    {
        var text = records.OfType<TXTRecord>().FirstOrDefault(r => r.Name == instance);
        if (text is null) return null;
        var properties = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string entry in text.Strings)
        {
            int equals = entry.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0) properties[entry[..equals]] = entry[(equals + 1)..];
        }
        if (!properties.TryGetValue("id", out var id) || id.Length is 0 or > 64 || !id.All(char.IsAsciiHexDigitLower)) return null;
        if (!properties.TryGetValue("port", out var portText) || !int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int peerPort) || peerPort is < 1 or > 65535) return null;
        string peerSite = properties.TryGetValue("site", out var s) && s.Length <= 64 ? s : "";
        string? address = properties.TryGetValue("addr", out var explicitAddress) ? explicitAddress : null;
        if (address is null)
        {
            if (source is null) return null;
            if (source.IsIPv4MappedToIPv6) source = source.MapToIPv4();
            address = source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{source}]:{peerPort}" : $"{source}:{peerPort}";
        }
        return new LanPeer(id, address, peerSite);
    }

    private void StopLocked()
    {
        try
        {
            discovery?.Dispose();
            multicast?.Stop();
            multicast?.Dispose();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogFailed(logger, e.Message);
        }
        discovery = null;
        multicast = null;
    }

    public void Dispose()
    {
        NetworkChange.NetworkAddressChanged -= OnAddressChanged;
        lock (gate)
        {
            disposed = true;
            StopLocked();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "mDNS: advertising {Service} on port {Port} and browsing for peers")]
    private static partial void LogStarted(ILogger logger, string service, int port);

    [LoggerMessage(Level = LogLevel.Warning, Message = "mDNS: {Reason}; LAN discovery is off until the network changes (seed peers still work)")]
    private static partial void LogFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "mDNS: ignored an answer: {Reason}")]
    private static partial void LogBadAnswer(ILogger logger, string reason);
}
