using System.Text.RegularExpressions;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Consensus;

/// <summary>Consensus/ is a leaf (DESIGN.md §7): no other P2PReplay subsystem, no native calls, no clocks, threads or ambient randomness.</summary>
public sealed partial class ConsensusArchitectureTests
{
    private static IEnumerable<string> Sources() => Directory.GetFiles(Path.Combine(Repo.Root, "src", "P2PReplay", "Consensus"), "*.cs", SearchOption.AllDirectories);

    [Fact]
    public void Consensus_is_a_leaf()
    {
        Assert.NotEmpty(Sources());
        foreach (string file in Sources())
        {
            string text = File.ReadAllText(file);
            Match other = OtherSubsystem().Match(text);
            Assert.False(other.Success, $"{file} refers to {other.Value}");
            Assert.DoesNotContain("DllImport", text, StringComparison.Ordinal);
            Assert.DoesNotContain("LibraryImport", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Core_has_no_clock_thread_or_ambient_randomness()
    {
        foreach (string file in Sources().Where(f => !f.Contains($"{Path.DirectorySeparatorChar}Storage{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
        {
            string text = File.ReadAllText(file);
            Assert.False(Ambient().IsMatch(text), $"{file} uses a clock, thread, task or shared random");
        }
    }

    [GeneratedRegex(@"\bP2PReplay\.(?!Consensus\b)\w+")]
    private static partial Regex OtherSubsystem();

    [GeneratedRegex(@"DateTime\.|Stopwatch|Environment\.TickCount|new Thread|Task\.|Random\.Shared|new Random\(|Timer\b")]
    private static partial Regex Ambient();
}
