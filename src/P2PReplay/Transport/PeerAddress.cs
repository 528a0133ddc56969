using System.Globalization;
using System.Net;

namespace P2PReplay.Transport;

/// <summary>"host:port" addresses as peers advertise them ("[::1]:7000" for IPv6 literals).</summary>
internal static class PeerAddress
{
    public const int MaxLength = 255;

    public static bool TryParse(string? address, out string host, out int port)
    {
        host = "";
        port = 0;
        if (string.IsNullOrEmpty(address) || address.Length > MaxLength) return false;
        int colon = address.LastIndexOf(':');
        if (colon <= 0 || colon == address.Length - 1) return false;
        string hostPart = address[..colon];
        if (!int.TryParse(address.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535) return false;
        if (hostPart.StartsWith('['))
        {
            if (!hostPart.EndsWith(']') || !IPAddress.TryParse(hostPart[1..^1], out _)) return false;
            hostPart = hostPart[1..^1];
        }
        else if (hostPart.Contains(':', StringComparison.Ordinal))
        {
            return false;
        }

        foreach (char c in hostPart)
        {
            if (char.IsControl(c) || char.IsWhiteSpace(c)) return false;
        }

        host = hostPart;
        return true;
    }

    public static string Format(IPEndPoint endPoint) =>
        endPoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? $"[{endPoint.Address}]:{endPoint.Port.ToString(CultureInfo.InvariantCulture)}"
            : $"{endPoint.Address}:{endPoint.Port.ToString(CultureInfo.InvariantCulture)}";
}
