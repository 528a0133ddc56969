using P2PReplay.Tests.Fakes;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Vm;

/// <summary>Differential tests: Debian's busybox-static applets give the same output and status in the VM as natively.</summary>
public sealed class BusyboxTests
{
    private const string Text = "banana\napple\ncherry\napple\ndate 42\nelderberry\n";

    /// <summary>The same small tree natively (as the working directory) and in the VM (as the image root, where / is the cwd).</summary>
    private static string MakeTree()
    {
        string dir = GuestRunner.TempDirectory();
        File.WriteAllText(Path.Combine(dir, "fruit.txt"), Text);
        File.WriteAllText(Path.Combine(dir, "numbers.csv"), "a,1,x\nb,22,y\nc,333,z\n");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllText(Path.Combine(dir, "sub", "inner.txt"), "inside\n");
        return dir;
    }

    public static TheoryData<string[]> Applets() => new()
    {
        new[] { "echo", "hello", "world" },
        new[] { "echo", "-e", "tab\\there" },
        new[] { "cat", "fruit.txt", "sub/inner.txt" },
        new[] { "sha256sum", "fruit.txt" },
        new[] { "md5sum", "fruit.txt", "numbers.csv" },
        new[] { "wc", "fruit.txt" },
        new[] { "sort", "fruit.txt" },
        new[] { "sort", "-r", "-u", "fruit.txt" },
        new[] { "uniq", "-c", "fruit.txt" },
        new[] { "head", "-n", "2", "fruit.txt" },
        new[] { "tail", "-n", "2", "fruit.txt" },
        new[] { "tr", "a-z", "A-Z" },
        new[] { "cut", "-d", ",", "-f", "2", "numbers.csv" },
        new[] { "seq", "1", "3", "20" },
        new[] { "expr", "6", "*", "7" },
        new[] { "expr", "1", "=", "2" },
        new[] { "printf", "%05d|%-6s|%x\\n", "42", "ab", "255" },
        new[] { "awk", "-F,", "{ s += $2 } END { print s, NR }", "numbers.csv" },
        new[] { "sed", "-e", "s/an/AN/g", "-e", "/cherry/d", "fruit.txt" },
        new[] { "grep", "-n", "an", "fruit.txt" },
        new[] { "grep", "-c", "nothing", "fruit.txt" },
        new[] { "ls", "sub" },
        new[] { "date", "-u", "-d", "@1700000000", "+%Y-%m-%d %H:%M:%S" },
        new[] { "sleep", "0.05" },
        new[] { "sh", "-c", "x=0; for i in 1 2 3 4 5; do x=$((x + i * i)); done; echo sum=$x" },
        new[] { "sh", "-c", "f() { echo \"f($1)=$(( $1 * 2 ))\"; return 3; }; f 21; echo status=$?" },
        new[] { "sh", "-c", "i=0; while [ $i -lt 3 ]; do echo line $i; i=$((i+1)); done; while read -r w n; do echo \"$n:$w\"; done <<EOF\nhere $i\nthere $((i * 2))\nEOF\n" },
        new[] { "sh", "-c", "echo one > out.txt; echo two >> out.txt; while read l; do echo got $l; done < out.txt" },
        new[] { "sh", "-c", "set -- a b c; echo $# $*; shift; echo $1; case $2 in c) echo matched;; esac; x=hello; echo ${#x} $((7 % 3))" },
        new[] { "ls", "-1", "-a", "sub" },
        new[] { "mkdir", "-p", "d/e/f" },
        new[] { "mkdir", "sub" },
        new[] { "cp", "fruit.txt", "sub/copy.txt" },
        new[] { "cp", "nothing", "x" },
        new[] { "mv", "fruit.txt", "sub/" },
        new[] { "mv", "nothing", "x" },
        new[] { "rm", "numbers.csv" },
        new[] { "rm", "-r", "sub" },
        new[] { "rm", "nothing" },
        new[] { "sh", "-c", "exit 7" },
    };

    [KvmTheory]
    [MemberData(nameof(Applets))]
    public void Applet_matches_the_native_run(string[] args)
    {
        byte[] stdin = System.Text.Encoding.UTF8.GetBytes(Text);
        string nativeDir = MakeTree(), vmRoot = MakeTree();
        try
        {
            var native = GuestRunner.Native(Repo.Busybox, args, nativeDir, stdin: stdin);
            var vm = GuestRunner.InVm(Repo.Busybox, args, vmRoot, stdin: stdin);
            Assert.True(native.Stdout == vm.Stdout && native.ExitCode == vm.ExitCode && native.Stderr == vm.Stderr,
                $"native:\n{GuestRunner.Describe(native)}\nvm:\n{GuestRunner.Describe(vm)}");
            // The image is read-only: whatever the guest wrote stayed in its writable layer.
            Assert.Equal(Text, File.ReadAllText(Path.Combine(vmRoot, "fruit.txt")));
            Assert.Equal(3, Directory.GetFileSystemEntries(vmRoot).Length);
        }
        finally
        {
            Directory.Delete(nativeDir, true);
            Directory.Delete(vmRoot, true);
        }
    }

    [KvmFact]
    public void Gzip_output_from_the_vm_is_read_back_by_gunzip_in_the_vm()
    {
        // Without fork/exec a shell cannot run gzip and gunzip as children, so the round trip is two VM runs: gzip
        // compresses inside one VM, and gunzip decompresses those bytes inside another, from its image.
        string root = MakeTree();
        try
        {
            var packHost = new FakeHost { ClockStep = 1000 };
            var gz = GuestRunner.InVm(Repo.Busybox, ["gzip", "-c", "-9", "fruit.txt"], root, host: packHost);
            Assert.Equal(0, gz.ExitCode);
            byte[] packed = packHost.Stdout.ToArray();
            Assert.Equal(new byte[] { 0x1f, 0x8b }, packed[..2]);
            File.WriteAllBytes(Path.Combine(root, "fruit.txt.gz"), packed);
            var gunzip = GuestRunner.InVm(Repo.Busybox, ["gunzip", "-c", "fruit.txt.gz"], root);
            Assert.Equal(0, gunzip.ExitCode);
            Assert.Equal(Text, gunzip.Stdout);
            // gunzip also writes a file: in the VM it lands in the writable layer, never in the image.
            File.Delete(Path.Combine(root, "fruit.txt"));
            var inPlace = GuestRunner.InVm(Repo.Busybox, ["gunzip", "fruit.txt.gz"], root);
            Assert.Equal(0, inPlace.ExitCode);
            Assert.True(File.Exists(Path.Combine(root, "fruit.txt.gz")));
            Assert.False(File.Exists(Path.Combine(root, "fruit.txt")));
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [KvmFact]
    public void Pipelines_fail_clearly_instead_of_hanging()
    {
        var vm = GuestRunner.InVm(Repo.Busybox, ["sh", "-c", "echo a | cat"]);
        Assert.NotEqual(0, vm.ExitCode);
        Assert.Contains(vm.Unsupported!, u => u.Name is "fork" or "vfork" or "clone");
    }
}
