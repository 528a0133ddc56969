using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Cli;

/// <summary>The published binary: exit statuses, passthrough of stdio, and clear errors for bad input.</summary>
public sealed class CliTests
{
    [KvmFact]
    public void Run_passes_stdout_and_the_exit_status_through()
    {
        var r = GuestRunner.Cli(["run", "--", Repo.Guest("musl", "exitcode"), "3"]);
        Assert.Equal(3, r.ExitCode);
        var hello = GuestRunner.Cli(["run", "--env", "GREETING=hi", "--", Repo.Busybox, "sh", "-c", "echo $GREETING; echo err >&2"]);
        Assert.Equal(0, hello.ExitCode);
        Assert.Equal("hi\n", hello.Stdout);
        Assert.Equal("err\n", hello.Stderr);
    }

    [KvmFact]
    public void Host_environment_does_not_leak_into_the_guest()
    {
        var r = GuestRunner.Cli(["run", "--", Repo.Busybox, "env"], env: new Dictionary<string, string> { ["SECRET_HOST_VAR"] = "leak" });
        Assert.Equal(0, r.ExitCode);
        Assert.DoesNotContain("SECRET_HOST_VAR", r.Stdout);
    }

    [KvmFact]
    public void Crash_gives_128_plus_signal_and_a_one_line_report()
    {
        var r = GuestRunner.Cli(["run", "--", Repo.Guest("glibc", "nullderef")]);
        Assert.Equal(139, r.ExitCode);
        string report = r.Stderr.Trim().Split('\n')[^1];
        Assert.Matches("^p2preplay: program killed by SIGSEGV \\(Segmentation fault\\), fault address 0x0, rip 0x[0-9a-f]+", report);
    }

    [KvmFact]
    public void Trace_syscalls_prints_strace_style_lines()
    {
        var r = GuestRunner.Cli(["run", "--trace-syscalls", "--", Repo.Guest("musl", "hello")]);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("exit_group(0) = ?", r.Stderr);
        Assert.Matches("arch_prctl\\(0x1002, 0x[0-9a-f]+\\) = 0", r.Stderr);
    }

    [Fact]
    public void Not_an_elf_is_refused_clearly()
    {
        string script = Path.Combine(Path.GetTempPath(), $"p2p-script-{Guid.NewGuid():N}.sh");
        File.WriteAllText(script, "#!/bin/sh\necho hi\n");
        try
        {
            var r = GuestRunner.Cli(["run", "--", script]);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("is not an ELF executable", r.Stderr);
        }
        finally
        {
            File.Delete(script);
        }
    }

    [Fact]
    public void Dynamic_programs_are_refused_naming_the_interpreter()
    {
        var r = GuestRunner.Cli(["run", "--", "/bin/ls"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("dynamically linked", r.Stderr);
        Assert.Contains("ld-linux-x86-64.so.2", r.Stderr);
    }

    [Fact]
    public void Non_x86_64_elves_are_refused()
    {
        string path = Path.Combine(Path.GetTempPath(), $"p2p-elf32-{Guid.NewGuid():N}");
        File.WriteAllBytes(path, Guest.ElfImageTests.BuildElf(elfClass: 1));
        string arm = path + "-arm";
        File.WriteAllBytes(arm, Guest.ElfImageTests.BuildElf(machine: 183));
        try
        {
            Assert.Contains("32-bit", GuestRunner.Cli(["run", "--", path]).Stderr);
            Assert.Contains("AArch64", GuestRunner.Cli(["run", "--", arm]).Stderr);
        }
        finally
        {
            File.Delete(path);
            File.Delete(arm);
        }
    }

    [Fact]
    public void A_program_larger_than_guest_memory_is_refused()
    {
        // A program whose bss alone is 64 MiB, in 16 MiB of guest memory.
        byte[] elf = Guest.ElfImageTests.BuildElf();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(elf.AsSpan(64 + 56 + 40), 64UL << 20);
        string path = Path.Combine(Path.GetTempPath(), $"p2p-big-{Guid.NewGuid():N}");
        File.WriteAllBytes(path, elf);
        try
        {
            var r = GuestRunner.Cli(["run", "--memory", "16M", "--", path]);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("does not fit", r.Stderr);
            Assert.Contains("--memory", r.Stderr);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Unknown_options_and_missing_programs_are_usage_errors()
    {
        var r = GuestRunner.Cli(["run", "--frobnicate", "--", "/bin/true"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("unknown option '--frobnicate'", r.Stderr);
        Assert.Equal(2, GuestRunner.Cli(["run"]).ExitCode);
        Assert.Equal(2, GuestRunner.Cli(["bogus"]).ExitCode);
        Assert.Contains("cannot read", GuestRunner.Cli(["run", "--", "/no/such/program"]).Stderr);
        Assert.Contains("not a memory size", GuestRunner.Cli(["run", "--memory", "lots", "--", "/bin/true"]).Stderr);
    }

    [Fact]
    public void Missing_kvm_device_says_how_to_fix_it()
    {
        var r = GuestRunner.Cli(["run", "--", Repo.Busybox, "true"], env: new Dictionary<string, string> { ["P2PREPLAY_KVM_DEVICE"] = "/nonexistent/kvm" });
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("does not exist", r.Stderr);
        Assert.Contains("modprobe", r.Stderr);
    }
}
