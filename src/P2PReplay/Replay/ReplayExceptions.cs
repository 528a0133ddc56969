namespace P2PReplay.Replay;

/// <summary>The replay took a different path from the recording; the message names the first differing point.</summary>
public sealed class ReplayDivergenceException(int vcpu, long exit, string syscall, string what)
    : Exception($"divergence at vCPU {vcpu}, exit {exit}{(syscall.Length > 0 ? $" ({syscall})" : "")}: {what}")
{
    public int Vcpu { get; } = vcpu;

    public long Exit { get; } = exit;

    public string What { get; } = what;
}

/// <summary>The log ends before the recorded run did (the recorder was killed): replay stops there.</summary>
public sealed class ReplayTruncatedException(string message) : Exception(message);
