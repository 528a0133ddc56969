using P2PReplay.Linux;

namespace P2PReplay.Tests.Fakes;

/// <summary>A deterministic host: fixed clocks (advanced by hand or by Sleep), seeded random bytes, scripted stdin, captured output.</summary>
public sealed class FakeHost(byte[]? stdin = null, int seed = 1) : IHostEnvironment
{
    private readonly Random _random = new(seed);
    private readonly byte[] _stdin = stdin ?? [];
    private int _stdinPosition;

    public long Realtime { get; set; } = 1_700_000_000_000_000_000L;

    public long Monotonic { get; set; } = 1_000_000_000L;

    /// <summary>How far both clocks move at each monotonic read (0: only Sleep moves them). Guests that check that
    /// time advances between two reads want a small step.</summary>
    public long ClockStep { get; set; }

    public MemoryStream Stdout { get; } = new();

    public MemoryStream Stderr { get; } = new();

    public string StdoutText => System.Text.Encoding.UTF8.GetString(Stdout.ToArray());

    public string StderrText => System.Text.Encoding.UTF8.GetString(Stderr.ToArray());

    public int RealtimeCalls { get; private set; }

    public long RealtimeNanoseconds()
    {
        RealtimeCalls++;
        return Realtime;
    }

    public long MonotonicNanoseconds()
    {
        Monotonic += ClockStep;
        Realtime += ClockStep;
        return Monotonic;
    }

    public void Sleep(long nanoseconds)
    {
        if (nanoseconds <= 0) return;
        Monotonic += nanoseconds;
        Realtime += nanoseconds;
    }

    public void GetRandomBytes(Span<byte> buffer) => _random.NextBytes(buffer);

    public int ReadStdin(Span<byte> buffer)
    {
        int n = Math.Min(buffer.Length, _stdin.Length - _stdinPosition);
        _stdin.AsSpan(_stdinPosition, n).CopyTo(buffer);
        _stdinPosition += n;
        return n;
    }

    public void WriteOutput(int fd, ReadOnlySpan<byte> data) => (fd == 2 ? Stderr : Stdout).Write(data);

    /// <summary>The network the guest's listening ports see (tests of the virtual network set one).</summary>
    public P2PReplay.Linux.Net.IHostNetwork Network { get; set; } = P2PReplay.Linux.Net.NoHostNetwork.Instance;
}
