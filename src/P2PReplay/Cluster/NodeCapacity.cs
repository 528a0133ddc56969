using System.Globalization;

namespace P2PReplay.Cluster;

/// <summary>
/// What this machine offers and whether its owner is using it, as advertised in gossip. "busy" when the 1-minute
/// load average exceeds half the cores (a crude but honest signal; input idle time comes with idle detection).
/// </summary>
internal static class NodeCapacity
{
    public static int Cores => Environment.ProcessorCount;

    public static long MemoryBytes
    {
        get
        {
            try
            {
                foreach (string line in File.ReadLines("/proc/meminfo"))
                {
                    if (!line.StartsWith("MemTotal:", StringComparison.Ordinal)) continue;
                    string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
                }
            }
            catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
            {
            }
            return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        }
    }

    public static string State(double? loadAverage, int cores) => loadAverage is double load && load > cores * 0.5 ? "busy" : "idle";

    public static double? LoadAverage()
    {
        try
        {
            string text = File.ReadAllText("/proc/loadavg");
            return double.Parse(text.AsSpan(0, text.IndexOf(' ', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }
}
