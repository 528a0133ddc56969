using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using Makaretu.Dns;
using Microsoft.Extensions.Logging;
using P2PReplay.Transport;

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
            var records = e.Message.Answers.Concat(e.Message.AdditionalRecords).ToList();
            var peer = Parse(e.ServiceInstanceName, records, e.RemoteEndPoint?.Address);
            LogAnswer(logger, e.ServiceInstanceName.ToString(), e.RemoteEndPoint?.ToString() ?? "?", string.Join(' ', records.Select(r => $"{r.Type}:{r.Name}")), peer?.Address ?? "(none)");
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
            // The answer's A records for the SRV target name the host's addresses (the library does not report the
            // packet's source); prefer one that is neither loopback nor link-local.
            var list = records as IList<ResourceRecord> ?? records.ToList();
            var target = list.OfType<SRVRecord>().FirstOrDefault(r => r.Name == instance)?.Target;
            var candidates = list.OfType<ARecord>().Where(r => target is null || r.Name == target).Select(r => r.Address).ToList();
            if (source is not null) candidates.Add(source.IsIPv4MappedToIPv6 ? source.MapToIPv4() : source);
            var chosen = candidates.FirstOrDefault(a => !IPAddress.IsLoopback(a) && !a.IsIPv6LinkLocal && !IsIPv4LinkLocal(a)) ?? candidates.FirstOrDefault();
            if (chosen is null) return null;
            address = PeerAddress.Format(new IPEndPoint(chosen, peerPort));
        }
        return new LanPeer(id, address, peerSite);
    }

    private static bool IsIPv4LinkLocal(IPAddress address) =>
        address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && address.GetAddressBytes() is [169, 254, _, _];

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

    [LoggerMessage(Level = LogLevel.Debug, Message = "mDNS: answer for {Instance} from {Source}: {Records} -> {Peer}")]
    private static partial void LogAnswer(ILogger logger, string instance, string source, string records, string peer);

    [LoggerMessage(Level = LogLevel.Debug, Message = "mDNS: ignored an answer: {Reason}")]
    private static partial void LogBadAnswer(ILogger logger, string reason);
}
