using P2PReplay.Linux;

namespace P2PReplay.Tests.Support;

/// <summary>A deterministic host for in-process VM runs: fixed stdin, captured output, a clock that only moves when slept, seeded randomness.</summary>
public sealed class CapturingHost(byte[]? stdin = null, int seed = 1) : IHostEnvironment
{
    private readonly MemoryStream _stdin = new(stdin ?? []);
    private readonly Random _random = new(seed);
    private long _monotonic = 1_000_000_000;

    public MemoryStream Stdout { get; } = new();

    public MemoryStream Stderr { get; } = new();

    public long Realtime { get; set; } = 1_767_225_600L * 1_000_000_000; // 2026-01-01T00:00:00Z

    public string StdoutText => System.Text.Encoding.UTF8.GetString(Stdout.ToArray());

    public string StderrText => System.Text.Encoding.UTF8.GetString(Stderr.ToArray());

    public long RealtimeNanoseconds() => Realtime + (_monotonic - 1_000_000_000);

    public long MonotonicNanoseconds() => _monotonic += 1000;

    public void Sleep(long nanoseconds) => _monotonic += Math.Max(0, nanoseconds);

    public void GetRandomBytes(Span<byte> buffer) => _random.NextBytes(buffer);

    public int ReadStdin(Span<byte> buffer) => _stdin.Read(buffer);

    public void WriteOutput(int fd, ReadOnlySpan<byte> data) => (fd == 2 ? Stderr : Stdout).Write(data);
}
