namespace P2PReplay.Linux;

/// <summary>
/// Everything nondeterministic the personality may take from the host. The run command wires the real host;
/// tests inject fixed values; record/replay logs what passes through here.
/// </summary>
public interface IHostEnvironment
{
    /// <summary>CLOCK_REALTIME in nanoseconds since the epoch.</summary>
    long RealtimeNanoseconds();

    /// <summary>CLOCK_MONOTONIC in nanoseconds.</summary>
    long MonotonicNanoseconds();

    /// <summary>Blocks the calling vCPU for the given time.</summary>
    void Sleep(long nanoseconds);

    /// <summary>Fills the buffer with random bytes (getrandom, /dev/urandom, AT_RANDOM).</summary>
    void GetRandomBytes(Span<byte> buffer);

    /// <summary>Reads the guest's standard input; 0 at end of input.</summary>
    int ReadStdin(Span<byte> buffer);

    /// <summary>Writes to the host's stdout (fd 1) or stderr (fd 2).</summary>
    void WriteOutput(int fd, ReadOnlySpan<byte> data);

    /// <summary>The network outside the VM (client connections to guest ports); by default none.</summary>
    Net.IHostNetwork Network => Net.NoHostNetwork.Sleeping;
}

/// <summary>The real host: system clocks, the OS random source, the process's own stdio.</summary>
public sealed class RealHostEnvironment : IHostEnvironment
{
    private readonly Stream _stdin = Console.OpenStandardInput();
    private readonly Stream _stdout = Console.OpenStandardOutput();
    private readonly Stream _stderr = Console.OpenStandardError();
    private readonly long _monotonicOrigin = System.Diagnostics.Stopwatch.GetTimestamp();

    public long RealtimeNanoseconds() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;

    public long MonotonicNanoseconds()
    {
        // Starts near one second so guests never see a zero monotonic clock.
        long ticks = System.Diagnostics.Stopwatch.GetTimestamp() - _monotonicOrigin;
        return 1_000_000_000L + (long)(ticks * (1e9 / System.Diagnostics.Stopwatch.Frequency));
    }

    public void Sleep(long nanoseconds)
    {
        if (nanoseconds > 0) Thread.Sleep(TimeSpan.FromTicks(Math.Max(1, nanoseconds / 100)));
    }

    public void GetRandomBytes(Span<byte> buffer) => System.Security.Cryptography.RandomNumberGenerator.Fill(buffer);

    public int ReadStdin(Span<byte> buffer) => _stdin.Read(buffer);

    /// <summary>The network the guest's listening ports are reachable from (run --expose); none by default.</summary>
    public Net.IHostNetwork Network { get; set; } = Net.NoHostNetwork.Sleeping;

    public void WriteOutput(int fd, ReadOnlySpan<byte> data)
    {
        var stream = fd == 2 ? _stderr : _stdout;
        stream.Write(data);
        stream.Flush();
    }
}
