using P2PReplay.Linux.Abi;
using P2PReplay.Linux.Syscalls;

namespace P2PReplay.Tests.FileSystem;

public sealed class FileSyscallFuzzTests : FsTestBase
{
    private static readonly int[] Numbers = FileSyscalls.Descriptors().Concat(PathSyscalls.Descriptors()).Select(d => d.Number).ToArray();

    private static readonly string[] Paths =
    [
        "/", "/tmp", "/tmp/a", "/tmp/b/", "/tmp/dir", "/tmp/dir/x", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/stdout",
        "/proc/self/exe", "/proc/self/fd/0", "/proc/self/fd/3", "/proc/self/fd", "..", ".", "", "/etc/passwd", "/tmp/link",
        "/data/a", "/data/link-to-passwd", "/data", "a/b/c", "/tmp/a/", "//tmp//a",
    ];

    [Fact]
    public void Random_calls_never_throw_and_return_valid_errnos()
    {
        string image = TempImage();
        Directory.CreateDirectory(Path.Combine(image, "data"));
        File.WriteAllText(Path.Combine(image, "data", "a"), "image file");
        File.CreateSymbolicLink(Path.Combine(image, "data", "link-to-passwd"), "/etc/passwd");
        NewGuest(image);
        var random = new Random(12345);
        ulong[] pathPointers = Paths.Select(Guest.Str).ToArray();
        ulong scratch = Guest.Alloc(1 << 16);
        for (int i = 0; i < 4000; i++)
        {
            int number = Numbers[random.Next(Numbers.Length)];
            var args = new ulong[6];
            for (int j = 0; j < 6; j++) args[j] = Arg(random, pathPointers, scratch);
            // Keep the output readable: writes to the host streams are bounded.
            if (number == 1 && args[0] is 1 or 2) args[2] %= 64;
            long result = Guest.Call(number, args[0], args[1], args[2], args[3], args[4], args[5]);
            Assert.True(result >= 0 || (result >= -4095 && Errno.Name((int)-result) != $"E{-result}"),
                $"{SyscallTable.ByNumber[number].Name}({string.Join(", ", args.Select(a => "0x" + a.ToString("x")))}) = {result}");
        }
    }

    private static ulong Arg(Random random, ulong[] paths, ulong scratch) => random.Next(10) switch
    {
        0 => paths[random.Next(paths.Length)],
        1 => scratch + (ulong)random.Next(1 << 16),
        2 => (ulong)random.Next(-2, 16),
        3 => unchecked((ulong)(long)-100),
        4 => (ulong)random.NextInt64(),
        5 => unchecked((ulong)random.NextInt64(long.MinValue, long.MaxValue)),
        6 => (ulong)random.Next(0, 1 << 20),
        7 => (ulong)(random.Next(4) switch { 0 => 0x40, 1 => 0x241, 2 => 0x10000, _ => 0x200000 }),
        8 => 0,
        _ => (ulong)random.Next(0, 4096),
    };
}
