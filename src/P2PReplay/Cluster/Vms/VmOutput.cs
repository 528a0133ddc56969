using P2PReplay.Linux;

namespace P2PReplay.Cluster.Vms;

/// <summary>A VM's stdout/stderr as it wrote them, each piece tagged with the exit that wrote it.</summary>
internal sealed class VmOutput
{
    public const int MaxBytes = 4 << 20;
    private readonly Lock gate = new();
    private readonly List<(long Exit, int Fd, byte[] Bytes)> pieces = [];
    private long total;

    public void Add(long exit, int fd, ReadOnlySpan<byte> bytes)
    {
        lock (gate)
        {
            pieces.Add((exit, fd, bytes.ToArray()));
            total += bytes.Length;
            // Bounded: the oldest output goes first (a long-running VM's `vm logs` shows the latest 4 MiB).
            while (total > MaxBytes && pieces.Count > 1)
            {
                total -= pieces[0].Bytes.Length;
                pieces.RemoveAt(0);
            }
        }
    }

    /// <summary>The output written at or before the exit (output commit: what may leave the cluster).</summary>
    public byte[] UpTo(long exit)
    {
        lock (gate)
        {
            var result = new MemoryStream();
            foreach (var (pieceExit, _, bytes) in pieces)
            {
                if (pieceExit > exit) break;
                result.Write(bytes);
            }
            return result.ToArray();
        }
    }

    public long Bytes
    {
        get
        {
            lock (gate) return total;
        }
    }
}

/// <summary>
/// What a VM run by the daemon sees of its host: real clocks and randomness (the recorder logs them), no stdin, and
/// stdout/stderr kept for `vm logs` instead of the daemon's own.
/// </summary>
internal sealed class VmHost(VmOutput output, Func<long> currentExit, Linux.Net.IHostNetwork? network = null) : IHostEnvironment
{
    private readonly RealHostEnvironment real = new();

    public long RealtimeNanoseconds() => real.RealtimeNanoseconds();
    public long MonotonicNanoseconds() => real.MonotonicNanoseconds();
    public void Sleep(long nanoseconds) => real.Sleep(nanoseconds);
    public void GetRandomBytes(Span<byte> buffer) => real.GetRandomBytes(buffer);
    public int ReadStdin(Span<byte> buffer) => 0;
    public void WriteOutput(int fd, ReadOnlySpan<byte> data) => output.Add(currentExit(), fd, data);

    /// <summary>Client connections through the daemons' front ends (none: a VM that exposes nothing).</summary>
    public Linux.Net.IHostNetwork Network { get; } = network ?? Linux.Net.NoHostNetwork.Sleeping;
}
