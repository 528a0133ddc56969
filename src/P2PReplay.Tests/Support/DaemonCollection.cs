namespace P2PReplay.Tests.Support;

/// <summary>Real daemon tests measure timeouts in wall-clock time: they run alone, not beside CPU-heavy tests.</summary>
[CollectionDefinition("daemons", DisableParallelization = true)]
public sealed class DaemonCollection;
