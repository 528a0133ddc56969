namespace P2PReplay.Tests.Support;

/// <summary>Whether this process may create network namespaces (root and iproute2), and why not.</summary>
public static class RootAvailability
{
    /// <summary>CI sets this to 1: missing root then fails the namespace tests instead of skipping them.</summary>
    public const string RequireVariable = "P2PREPLAY_REQUIRE_ROOT";

    public static string? MissingReason { get; } =
        Environment.UserName != "root" && Environment.GetEnvironmentVariable("USER") != "root" && !IsUidZero() ? "not running as root"
        : !File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip") ? "iproute2 (ip) is not installed"
        : null;

    private static bool IsUidZero()
    {
        try
        {
            return File.ReadLines("/proc/self/status").Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == "0");
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static string? SkipReason => MissingReason is { } reason && Environment.GetEnvironmentVariable(RequireVariable) != "1"
        ? $"needs root to create network namespaces ({reason}); set {RequireVariable}=1 to make this a failure"
        : null;
}

/// <summary>A fact that needs root (network namespaces): skipped with a visible reason elsewhere, unless CI requires it.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute() => Skip = RootAvailability.SkipReason;
}

/// <summary>A fact that needs both root (network namespaces) and /dev/kvm.</summary>
public sealed class KvmRootFactAttribute : FactAttribute
{
    public KvmRootFactAttribute() => Skip = KvmAvailability.SkipReason ?? RootAvailability.SkipReason;
}
