namespace P2PReplay.Tests.Support;

/// <summary>Paths inside the repository: the built guest programs and the published binary.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string Guest(string libc, string name)
    {
        string path = Path.Combine(Root, "tests", "guests", "build", libc, name);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} is missing: build the guest programs with tests/guests/build.sh (test.sh does)");
        return path;
    }

    public static string Binary
    {
        get
        {
            string path = Path.Combine(Root, "out", "p2preplay");
            if (!File.Exists(path)) throw new FileNotFoundException($"{path} is missing: publish it with test.sh or quickstart.sh");
            return path;
        }
    }

    public const string Busybox = "/bin/busybox";

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "P2PReplay.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root (P2PReplay.sln) above " + AppContext.BaseDirectory);
    }
}
