namespace P2PReplay.Linux;

/// <summary>How the guest program ended: a normal exit code, or death by a signal (with fault details when a CPU exception caused it).</summary>
public sealed record ExitStatus(int Code, int Signal, ulong? FaultAddress = null, ulong? Rip = null, string? Detail = null)
{
    public static ExitStatus Exited(int code) => new(code & 0xff, 0);

    public static ExitStatus Killed(int signal, ulong? faultAddress = null, ulong? rip = null, string? detail = null) =>
        new(128 + signal, signal, faultAddress, rip, detail);

    public bool BySignal => Signal != 0;

    /// <summary>The process exit status a shell would report: the code, or 128 + signal.</summary>
    public int ShellStatus => BySignal ? 128 + Signal : Code;
}
