using P2PReplay.Linux;
using P2PReplay.Tests.Fakes;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Vm;

/// <summary>Differential tests: static C programs (glibc and musl) give the same output and exit status in the VM as natively.</summary>
public sealed class CProgramTests
{
    public static TheoryData<string, string, string[]> Programs()
    {
        var data = new TheoryData<string, string, string[]>();
        foreach (string libc in new[] { "glibc", "musl" })
        {
            data.Add(libc, "hello", []);
            data.Add(libc, "exitcode", ["0"]);
            data.Add(libc, "exitcode", ["42"]);
            data.Add(libc, "argv_env", ["one", "two words", "", "HOME", "GREETING", "MISSING"]);
            data.Add(libc, "malloc", []);
            data.Add(libc, "files", ["scratch"]);
            data.Add(libc, "time", []);
            data.Add(libc, "random", []);
        }
        return data;
    }

    [KvmTheory]
    [MemberData(nameof(Programs))]
    public void Output_and_status_match_the_native_run(string libc, string name, string[] args)
    {
        string program = Repo.Guest(libc, name);
        string[] env = ["GREETING=hello world", "HOME=/home/guest"];
        string nativeDir = GuestRunner.TempDirectory(), vmRoot = GuestRunner.TempDirectory();
        try
        {
            var native = GuestRunner.Native(program, args, nativeDir, env);
            var vm = GuestRunner.InVm(program, args, vmRoot, env);
            Assert.True(native.Stdout == vm.Stdout && native.ExitCode == vm.ExitCode,
                $"native:\n{GuestRunner.Describe(native)}\nvm:\n{GuestRunner.Describe(vm)}");
            Assert.Empty(Directory.GetFileSystemEntries(vmRoot)); // guest writes never reach the host
        }
        finally
        {
            Directory.Delete(nativeDir, true);
            Directory.Delete(vmRoot, true);
        }
    }

    [KvmTheory]
    [InlineData("glibc")]
    [InlineData("musl")]
    public void Stdin_passes_through(string libc)
    {
        byte[] input = new byte[200_000];
        new Random(7).NextBytes(input);
        var host = new FakeHost(input) { ClockStep = 1000 };
        var vm = GuestRunner.InVm(Repo.Guest(libc, "stdin_cat"), [], host: host);
        Assert.Equal(0, vm.ExitCode);
        Assert.Equal(input, host.Stdout.ToArray());
    }

    [KvmTheory]
    [InlineData("glibc")]
    [InlineData("musl")]
    public void Null_dereference_is_reported_like_a_shell_would(string libc)
    {
        string program = Repo.Guest(libc, "nullderef");
        var native = GuestRunner.Native(program, []);
        var vm = GuestRunner.InVm(program, []);
        Assert.Equal(139, native.ExitCode);
        Assert.Equal(139, vm.ExitCode);
        Assert.Equal(native.Stdout, vm.Stdout);
        Assert.Equal(Signals.SIGSEGV, vm.Status!.Signal);
        Assert.Equal(0UL, vm.Status.FaultAddress);
        Assert.InRange(vm.Status.Rip!.Value, 0x400000UL, 0x800000UL);
        string report = P2PReplay.Cli.RunCommand.CrashReport(vm.Status);
        Assert.Contains("SIGSEGV", report);
        Assert.Contains("fault address 0x0", report);
        Assert.Contains($"rip 0x{vm.Status.Rip:x}", report);
    }

    [KvmTheory]
    [InlineData("glibc")]
    [InlineData("musl")]
    public void Abort_dies_by_sigabrt(string libc)
    {
        string program = Repo.Guest(libc, "abort");
        var native = GuestRunner.Native(program, []);
        var vm = GuestRunner.InVm(program, []);
        Assert.Equal(134, native.ExitCode);
        Assert.Equal(native.ExitCode, vm.ExitCode);
        Assert.Equal(native.Stdout, vm.Stdout);
    }

    [KvmTheory]
    [InlineData("glibc", 1)]
    [InlineData("glibc", 2)]
    [InlineData("musl", 3)]
    [InlineData("musl", 4)]
    public void Hostile_syscalls_only_hurt_the_guest(string libc, int seed)
    {
        // Random syscall numbers with wild pointers and lengths: the VMM must answer every one with a result or
        // -errno (or end the guest), never fault or throw itself.
        var vm = GuestRunner.InVm(Repo.Guest(libc, "hostile"), [seed.ToString(), "20000"], memory: 256UL << 20);
        Assert.NotNull(vm.Status);
        if (!vm.Status!.BySignal) Assert.Contains("hostile: done", vm.Stdout);
    }
}
