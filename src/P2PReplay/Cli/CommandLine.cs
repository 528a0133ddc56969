namespace P2PReplay.Cli;

internal static class CommandLine
{
    public static int Run(string[] args)
    {
        Console.WriteLine("p2preplay");
        return 0;
    }
}
