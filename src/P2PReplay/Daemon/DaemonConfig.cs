using System.Globalization;
using System.Net;
using P2PReplay.Transport;

namespace P2PReplay.Daemon;

/// <summary>The config file or a flag is wrong; the message names the line or flag.</summary>
internal sealed class ConfigException(string message) : Exception(message);

/// <summary>
/// The daemon's settings. Read from a `key = value` file (comments with #), then overridden by flags; every value is
/// validated so a typo stops the daemon with a message naming the line, not later with a surprise.
/// </summary>
internal sealed record DaemonConfig
{
    public const string DefaultConfigFile = "/etc/p2preplay/p2preplay.conf";
    public const int DefaultPeerPort = 7410;

    public string DataDir { get; init; } = "/var/lib/p2preplay";
    public string ControlSocket { get; init; } = "/run/p2preplay/p2preplay.sock";
    public UnixFileMode ControlSocketMode { get; init; } = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;
    public IPEndPoint Listen { get; init; } = new(IPAddress.Any, DefaultPeerPort);
    /// <summary>The address peers should dial; null means "the listen address, or this host's first LAN address".</summary>
    public string? Advertise { get; init; }
    public string Site { get; init; } = Environment.MachineName;
    public IReadOnlyList<string> Seeds { get; init; } = [];
    public bool Mdns { get; init; } = true;
    /// <summary>Raft and gossip clock: one tick every this many milliseconds.</summary>
    public int TickMilliseconds { get; init; } = 25;
    /// <summary>Where the front ends serve exposed guest ports; null: the listen address's IP.</summary>
    public IPAddress? ExposeAddress { get; init; }
    /// <summary>A replicated VM's primary asks a replica for a checkpoint after this much new log (then drops the log behind it).</summary>
    public int CheckpointEveryKib { get; init; } = 64 * 1024;

    public static readonly string[] Keys = ["data_dir", "control_socket", "control_socket_mode", "listen", "advertise", "site", "seeds", "mdns", "tick_ms", "expose_address", "checkpoint_every_kib"];

    /// <summary>Parses a config file's text; unknown keys and bad values are errors naming their line.</summary>
    public static DaemonConfig Parse(string text, string fileName, DaemonConfig? defaults = null)
    {
        var config = defaults ?? new DaemonConfig();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int number = 0;
        foreach (string rawLine in text.Split('\n'))
        {
            number++;
            string line = rawLine.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int equals = line.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0) throw new ConfigException($"{fileName}:{number}: expected `key = value`, got '{Shorten(line)}'");
            string key = line[..equals].Trim();
            string value = line[(equals + 1)..].Trim();
            if (!seen.Add(key)) throw new ConfigException($"{fileName}:{number}: '{key}' is set twice");
            try
            {
                config = config.With(key, value);
            }
            catch (ConfigException e)
            {
                throw new ConfigException($"{fileName}:{number}: {e.Message}");
            }
        }
        return config;
    }

    /// <summary>Returns a copy with one setting changed (shared by the file parser and the command-line flags).</summary>
    public DaemonConfig With(string key, string value) => key switch
    {
        "data_dir" => this with { DataDir = RequirePath(key, value) },
        "control_socket" => this with { ControlSocket = RequirePath(key, value) },
        "control_socket_mode" => this with { ControlSocketMode = ParseMode(value) },
        "listen" => this with { Listen = ParseListen(value) },
        "advertise" => this with { Advertise = value.Length == 0 ? null : ValidateHostPort(key, value) },
        "site" => this with { Site = ValidateLabel(value) },
        "seeds" => this with { Seeds = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => ValidateHostPort(key, s)).ToArray() },
        "mdns" => this with { Mdns = ParseBool(key, value) },
        "tick_ms" => this with { TickMilliseconds = ParseInt(key, value, 1, 10_000) },
        "expose_address" => this with { ExposeAddress = IPAddress.TryParse(value, out var ip) ? ip : throw new ConfigException($"expose_address must be an IP address, got '{value}'") },
        "checkpoint_every_kib" => this with { CheckpointEveryKib = ParseInt(key, value, 16, 1 << 20) },
        _ => throw new ConfigException($"unknown setting '{key}' (known: {string.Join(", ", Keys)})"),
    };

    private static string Shorten(string text) => text.Length > 60 ? text[..60] + "..." : text;

    private static string RequirePath(string key, string value) =>
        value.Length > 0 && value.StartsWith('/') ? value : throw new ConfigException($"{key} must be an absolute path, got '{value}'");

    private static UnixFileMode ParseMode(string value)
    {
        if (value.Length is < 3 or > 4 || !value.All(c => c is >= '0' and <= '7'))
            throw new ConfigException($"control_socket_mode must be octal like 0660, got '{value}'");
        int mode = Convert.ToInt32(value, 8);
        if ((mode & 0b110_000_000) != 0b110_000_000) throw new ConfigException("control_socket_mode must let the owner read and write (0600 at least)");
        return (UnixFileMode)mode;
    }

    private static IPEndPoint ParseListen(string value)
    {
        if (!IPEndPoint.TryParse(value, out var endpoint) || endpoint.Port is 0 && !value.EndsWith(":0", StringComparison.Ordinal))
            throw new ConfigException($"listen must be IP:PORT (for example 0.0.0.0:{DefaultPeerPort}), got '{value}'");
        return endpoint;
    }

    /// <summary>host:port as peers dial it (<see cref="PeerAddress"/>), where host is a DNS name or an IP address.</summary>
    public static string ValidateHostPort(string key, string value)
    {
        if (!PeerAddress.TryParse(value, out string host, out _)) throw new ConfigException($"{key}: '{value}' is not host:port");
        if (IPAddress.TryParse(host, out _) || Uri.CheckHostName(host) == UriHostNameType.Dns) return value;
        throw new ConfigException($"{key}: '{host}' is not a host name or IP address");
    }

    private static string ValidateLabel(string value) =>
        value.Length is > 0 and <= 64 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')
            ? value
            : throw new ConfigException($"site must be 1-64 letters, digits, '-', '_' or '.', got '{value}'");

    private static bool ParseBool(string key, string value) => value.ToLowerInvariant() switch
    {
        "on" or "true" or "yes" or "1" => true,
        "off" or "false" or "no" or "0" => false,
        _ => throw new ConfigException($"{key} must be on or off, got '{value}'"),
    };

    private static int ParseInt(string key, string value, int min, int max) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int parsed) && parsed >= min && parsed <= max
            ? parsed
            : throw new ConfigException($"{key} must be a whole number from {min} to {max}, got '{value}'");
}
