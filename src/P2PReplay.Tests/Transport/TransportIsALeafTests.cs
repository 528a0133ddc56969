using System.Text.RegularExpressions;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Transport;

/// <summary>Transport/ is a leaf (DESIGN.md §7): no other P2PReplay namespace, no native calls.</summary>
public sealed partial class TransportIsALeafTests
{
    [Fact]
    public void Transport_refers_to_no_other_subsystem_and_declares_no_native_calls()
    {
        string folder = Path.Combine(Repo.Root, "src", "P2PReplay", "Transport");
        foreach (string file in Directory.GetFiles(folder, "*.cs", SearchOption.AllDirectories))
        {
            string text = File.ReadAllText(file);
            foreach (Match match in OtherNamespace().Matches(text)) Assert.Fail($"{Path.GetFileName(file)} refers to {match.Value}");
            Assert.False(text.Contains("DllImport", StringComparison.Ordinal) || text.Contains("LibraryImport", StringComparison.Ordinal), $"{file} declares a native call");
        }
    }

    [GeneratedRegex(@"\bP2PReplay\.(?!Transport\b)\w+")]
    private static partial Regex OtherNamespace();
}
