namespace P2PReplay.Tests.Support;

/// <summary>Whether this machine can run the KVM tests, and why not.</summary>
public static class KvmAvailability
{
    /// <summary>CI sets this to 1: a missing /dev/kvm then fails the KVM tests instead of skipping them.</summary>
    public const string RequireVariable = "P2PREPLAY_REQUIRE_KVM";

    public static string? MissingReason { get; } = Probe();

    public static bool Required => Environment.GetEnvironmentVariable(RequireVariable) == "1";

    private static string? Probe()
    {
        if (!File.Exists("/dev/kvm")) return "/dev/kvm does not exist";
        try
        {
            using var stream = new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
            return null;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            return $"/dev/kvm is not accessible: {e.Message}";
        }
    }

    public static string? SkipReason => MissingReason is { } reason && !Required
        ? $"needs KVM ({reason}); set {RequireVariable}=1 to make this a failure"
        : null;
}

/// <summary>A fact that needs /dev/kvm: skipped with a visible reason where KVM is absent, unless CI requires KVM.</summary>
public sealed class KvmFactAttribute : FactAttribute
{
    public KvmFactAttribute() => Skip = KvmAvailability.SkipReason;
}

/// <summary>A theory that needs /dev/kvm (see <see cref="KvmFactAttribute"/>).</summary>
public sealed class KvmTheoryAttribute : TheoryAttribute
{
    public KvmTheoryAttribute() => Skip = KvmAvailability.SkipReason;
}
