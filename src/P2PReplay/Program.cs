namespace P2PReplay;

internal static class Program
{
    private static int Main(string[] args) => Cli.CommandLine.Run(args);
}
