using System.Diagnostics;
using System.Globalization;
using P2PReplay.Discovery.Gossip;
using P2PReplay.Tests.Gossip;

// Usage: GossipSim [--trials N] [--hours H] [--loss L] [--probe-interval MS] [--probe-timeout MS] [--suspicion-min MS] [--suspicion-max MS] [--delay MIN-MAX]
// Detection: time from a member's crash until every live member has marked it dead.
// False positives: live members marked dead (one count per observer) per node-hour under packet loss.
var config = new GossipConfig();
int trials = 200;
int minDelay = 1, maxDelay = 10;
double hours = 1;
double loss = 0.10;
for (int i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--trials": trials = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--hours": hours = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--loss": loss = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--delay":
            string[] range = args[i + 1].Split('-');
            minDelay = int.Parse(range[0], CultureInfo.InvariantCulture);
            maxDelay = int.Parse(range[1], CultureInfo.InvariantCulture);
            break;
        case "--probe-interval": config = config with { ProbeIntervalMs = int.Parse(args[i + 1], CultureInfo.InvariantCulture) }; break;
        case "--probe-timeout": config = config with { ProbeTimeoutMs = int.Parse(args[i + 1], CultureInfo.InvariantCulture) }; break;
        case "--suspicion-min": config = config with { SuspicionMinTimeoutMs = int.Parse(args[i + 1], CultureInfo.InvariantCulture) }; break;
        case "--suspicion-max": config = config with { SuspicionMaxTimeoutMs = int.Parse(args[i + 1], CultureInfo.InvariantCulture) }; break;
        default: throw new ArgumentException($"unknown option {args[i]}");
    }
}

Console.WriteLine($"config: probe {config.ProbeIntervalMs}/{config.ProbeTimeoutMs} ms, k={config.IndirectProbeCount}, suspicion x{config.SuspicionMultiplier} min {config.SuspicionMinTimeoutMs} max {config.SuspicionMaxTimeoutMs} ms, gossip {config.GossipIntervalMs} ms x{config.GossipFanout}, push-pull {config.PushPullIntervalMs} ms");
Console.WriteLine($"network: one-way delay uniform {minDelay}-{maxDelay} ms, step 5 ms");
var total = Stopwatch.StartNew();
foreach (double lossRate in new[] { 0.0, loss })
{
    foreach (int n in new[] { 5, 10, 20 })
    {
        var (times, missed, perNodeSend, perNodeBytes) = Detection(config, n, trials, lossRate, minDelay, maxDelay);
        times.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"detection  n={n,2} loss={lossRate:P0}: median {Percentile(times, 0.5),5} ms  p99 {Percentile(times, 0.99),5} ms  max {times[^1],5} ms  (trials {trials}, not within 10 s: {missed}; per node {perNodeSend:F1} packets/s, {perNodeBytes / 1024:F1} KiB/s sent)"));
    }
}
foreach (int n in new[] { 5, 10, 20 })
{
    var (falseDead, falseSuspect) = FalsePositives(config, n, hours, loss, minDelay, maxDelay);
    double nodeHours = n * hours;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"false dead n={n,2} loss={loss:P0}: {falseDead} in {nodeHours:F0} node-hours = {falseDead / nodeHours:F3} per node-hour (false suspicions {falseSuspect / nodeHours:F1} per node-hour)"));
}
foreach (int n in new[] { 10, 20 })
{
    List<long> heal = PartitionHeal(config, n, Math.Max(10, trials / 10), loss, minDelay, maxDelay);
    heal.Sort();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"partition  n={n,2} loss={loss:P0}: halves apart 10 s, then everyone sees everyone alive after median {Percentile(heal, 0.5)} ms, max {heal[^1]} ms ({heal.Count} trials, push-pull every {config.PushPullIntervalMs} ms)"));
}
Console.WriteLine($"wall time {total.Elapsed.TotalSeconds:F0} s");

static long Percentile(List<long> sorted, double p) => sorted.Count == 0 ? -1 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

static (List<long> Times, int Missed, double PacketsPerNodeSecond, double BytesPerNodeSecond) Detection(GossipConfig config, int n, int trials, double loss, int minDelay, int maxDelay)
{
    var times = new List<long>();
    int missed = 0;
    long packets = 0, bytes = 0;
    double nodeSeconds = 0;
    for (int trial = 0; trial < trials; trial++)
    {
        var sim = new GossipSimulation(seed: 100_000 * n + trial, config) { RecordEvents = false, MinDelayMs = minDelay, MaxDelayMs = maxDelay };
        sim.Bootstrap(n);
        sim.RunUntil(sim.Converged, 10_000);
        sim.LossRate = loss;
        long warmStart = sim.NowMs;
        long packetsBefore = sim.PacketsSent, bytesBefore = sim.BytesSent;
        sim.RunFor(2_000 + new Random(trial).Next(2_000));
        packets += sim.PacketsSent - packetsBefore;
        bytes += sim.BytesSent - bytesBefore;
        nodeSeconds += n * (sim.NowMs - warmStart) / 1000.0;
        GossipSimulation.SimNode victim = sim.Nodes[new Random(trial * 7 + 1).Next(n)];
        victim.Running = false;
        long crashedAt = sim.NowMs;
        var sawDead = new HashSet<int>();
        sim.OnEvent = (observer, e) =>
        {
            if (e.Kind == GossipEventKind.Dead && e.Member.Info.NodeId == victim.NodeId) sawDead.Add(observer.Index);
        };
        if (sim.RunUntil(() => sawDead.Count == n - 1, 10_000)) times.Add(sim.NowMs - crashedAt);
        else missed++;
    }
    return (times, missed, packets / nodeSeconds, bytes / nodeSeconds);
}

static (long FalseDead, long FalseSuspect) FalsePositives(GossipConfig config, int n, double hours, double loss, int minDelay, int maxDelay)
{
    var sim = new GossipSimulation(seed: 7_000 + n, config) { RecordEvents = false, MinDelayMs = minDelay, MaxDelayMs = maxDelay };
    sim.Bootstrap(n);
    sim.RunUntil(sim.Converged, 10_000);
    sim.LossRate = loss;
    long falseDead = 0, falseSuspect = 0;
    sim.OnEvent = (_, e) =>
    {
        if (e.Kind == GossipEventKind.Dead) falseDead++;
        if (e.Kind == GossipEventKind.Suspect) falseSuspect++;
    };
    sim.RunFor((long)(hours * 3_600_000));
    return (falseDead, falseSuspect);
}

static List<long> PartitionHeal(GossipConfig config, int n, int trials, double loss, int minDelay, int maxDelay)
{
    var times = new List<long>();
    for (int trial = 0; trial < trials; trial++)
    {
        var sim = new GossipSimulation(seed: 900_000 + 1000 * n + trial, config) { RecordEvents = false, MinDelayMs = minDelay, MaxDelayMs = maxDelay };
        sim.Bootstrap(n);
        sim.RunUntil(sim.Converged, 10_000);
        sim.LossRate = loss;
        sim.Partition(sim.Nodes.Skip(n / 2));
        sim.RunFor(10_000);
        sim.Heal();
        long healedAt = sim.NowMs;
        times.Add(sim.RunUntil(sim.Converged, 120_000) ? sim.NowMs - healedAt : long.MaxValue);
    }
    return times;
}
