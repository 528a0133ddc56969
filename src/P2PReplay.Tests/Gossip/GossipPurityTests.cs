using System.Text.RegularExpressions;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Gossip;

/// <summary>The gossip core stays a pure state machine: no other subsystem, no I/O, no clocks, no ambient randomness.</summary>
public sealed partial class GossipPurityTests
{
    [Fact]
    public void Gossip_core_uses_no_other_subsystem_io_clock_or_ambient_randomness()
    {
        string folder = Path.Combine(Repo.Root, "src", "P2PReplay", "Discovery", "Gossip");
        string[] files = Directory.GetFiles(folder, "*.cs", SearchOption.AllDirectories);
        Assert.NotEmpty(files);
        foreach (string file in files)
        {
            string text = File.ReadAllText(file);
            foreach (Match m in OtherNamespace().Matches(text)) Assert.Fail($"{Path.GetFileName(file)} refers to {m.Value}");
            Match banned = Impure().Match(text);
            Assert.False(banned.Success, $"{Path.GetFileName(file)} uses {banned.Value}");
        }
    }

    [GeneratedRegex(@"\bP2PReplay\.(?!Discovery\.Gossip\b)\w+")]
    private static partial Regex OtherNamespace();

    [GeneratedRegex(@"\b(DllImport|LibraryImport|System\.Net|Socket|DateTime|DateTimeOffset|Stopwatch|TickCount|Thread|Task\.|Timer|new Random\(|Random\.Shared|Guid\.NewGuid|File\.|Console\.)")]
    private static partial Regex Impure();
}
