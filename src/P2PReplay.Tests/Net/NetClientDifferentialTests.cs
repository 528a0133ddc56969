using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Net;

/// <summary>net_client_test (the socket API against its own listener) prints the same natively and in the VM.</summary>
public sealed class NetClientDifferentialTests
{
    [KvmTheory]
    [InlineData("glibc")]
    [InlineData("musl")]
    public void Same_output_natively_and_in_the_vm(string libc)
    {
        string program = Repo.Guest(libc, "net_client_test");
        var native = GuestRunner.Native(program, []);
        var vm = GuestRunner.InVm(program, []);
        Assert.True(native.ExitCode == 0, GuestRunner.Describe(native));
        Assert.True(native.Stdout == vm.Stdout && vm.ExitCode == 0, $"native:\n{GuestRunner.Describe(native)}\nvm:\n{GuestRunner.Describe(vm)}");
    }
}
