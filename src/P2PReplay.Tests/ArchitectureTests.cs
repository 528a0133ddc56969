using System.Text.RegularExpressions;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests;

/// <summary>Dependencies between subsystems point one way (DESIGN.md §7); P/Invoke lives only in Interop/.</summary>
public sealed partial class ArchitectureTests
{
    private static readonly string Source = Path.Combine(Repo.Root, "src", "P2PReplay");

    [Theory]
    [InlineData("Linux", new[] { "Kvm", "Guest", "Vmm", "Interop", "Cli" })]
    [InlineData("Guest", new[] { "Vmm", "Linux", "Cli" })]
    [InlineData("Kvm", new[] { "Guest", "Vmm", "Linux", "Cli" })]
    [InlineData("Interop", new[] { "Kvm", "Guest", "Vmm", "Linux", "Cli" })]
    [InlineData("Vmm", new[] { "Cli" })]
    [InlineData("Replay/Format", new[] { "Kvm", "Guest", "Vmm", "Linux", "Interop", "Cli" })]
    [InlineData("Transport", new[] { "Kvm", "Guest", "Vmm", "Linux", "Interop", "Replay", "Discovery", "Consensus", "Cluster", "Control", "Daemon", "Cli" })]
    [InlineData("Consensus", new[] { "Kvm", "Guest", "Vmm", "Linux", "Interop", "Replay", "Transport", "Discovery", "Cluster", "Control", "Daemon", "Cli" })]
    [InlineData("Discovery", new[] { "Kvm", "Guest", "Vmm", "Linux", "Interop", "Replay", "Consensus", "Cluster", "Control", "Daemon", "Cli" })]
    [InlineData("Daemon", new[] { "Kvm", "Guest", "Vmm", "Linux", "Interop", "Replay", "Discovery", "Consensus", "Cluster", "Control", "Cli" })]
    [InlineData("Cluster", new[] { "Control", "Cli" })]
    [InlineData("Control", new[] { "Cli", "Kvm", "Interop" })]
    public void Subsystem_does_not_depend_on(string folder, string[] forbidden)
    {
        foreach (string file in Directory.GetFiles(Path.Combine(Source, folder), "*.cs", SearchOption.AllDirectories))
        {
            string text = File.ReadAllText(file);
            foreach (string other in forbidden)
            {
                Assert.False(Regex.IsMatch(text, $@"\bP2PReplay\.{other}\b"), $"{Path.GetRelativePath(Source, file)} refers to P2PReplay.{other}");
            }
        }
    }

    [Fact]
    public void Native_calls_live_only_in_interop()
    {
        foreach (string file in Directory.GetFiles(Source, "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") || file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}")) continue;
            bool inInterop = Path.GetRelativePath(Source, file).StartsWith("Interop", StringComparison.Ordinal);
            string text = File.ReadAllText(file);
            bool declaresImport = NativeImport().IsMatch(text);
            Assert.True(inInterop || !declaresImport, $"{file} declares a native import outside Interop/");
            if (inInterop) Assert.True(NativeImport().Matches(text).Select(m => m.Groups["entry"].Value).Distinct().Count() <= 1, $"{file} declares more than one native call");
        }
    }

    [GeneratedRegex("""(LibraryImport|DllImport)\([^)]*EntryPoint\s*=\s*"(?<entry>\w+)"|(LibraryImport|DllImport)\(""")]
    private static partial Regex NativeImport();
}
