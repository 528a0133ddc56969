// KVM, Unix sockets and file modes: p2preplay runs on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace P2PReplay;

internal static class Program
{
    private static int Main(string[] args) => Cli.CommandLine.Run(args);
}
