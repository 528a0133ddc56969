using System.Diagnostics;
using P2PReplay.Tests.Fakes;
using P2PReplay.Tests.Support;
using P2PReplay.Vmm;

namespace P2PReplay.Tests.Vm;

/// <summary>Another thread can stop a vCPU that never exits on its own (signal + immediate_exit), and it can run on.</summary>
public sealed class KickTests
{
    [KvmFact]
    public void A_spinning_guest_is_paused_from_another_thread_and_resumes()
    {
        string program = Repo.Guest("musl", "spin");
        var host = new FakeHost { ClockStep = 1000 };
        var config = new VmConfiguration(File.ReadAllBytes(program), program, [program], [], null, VmConfiguration.DefaultMemorySize);
        using var vm = MicroVm.Create(config, host, null);
        for (int round = 0; round < 3; round++)
        {
            var stopwatch = Stopwatch.StartNew();
            using var timer = new Timer(_ => vm.Runner.RequestPause(), null, 200, Timeout.Infinite);
            // Each round runs on a fresh thread: the kick must find whichever thread runs the vCPU.
            var result = Task.Run(vm.Run);
            Assert.True(result.Wait(TimeSpan.FromSeconds(10)), "the vCPU did not stop after a pause request");
            Assert.Null(result.Result);
            Assert.Equal(VcpuState.Paused, vm.Runner.State);
            Assert.InRange(stopwatch.ElapsedMilliseconds, 150, 10_000);
        }
        Assert.Equal("spinning\n", host.StdoutText);
        Assert.False(vm.Process.HasExited);
    }

    [KvmFact]
    public void Ctrl_c_stops_the_vm_and_reports_it()
    {
        var info = new ProcessStartInfo(Repo.Binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { "run", "--", Repo.Guest("glibc", "spin") }) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        Assert.Equal("spinning", process.StandardOutput.ReadLine());
        Interop.TestSignals.Kill(process.Id, 2);
        Assert.True(process.WaitForExit(10_000), "p2preplay did not stop on SIGINT");
        Assert.Equal(130, process.ExitCode);
        Assert.Contains("stopped by SIGINT", process.StandardError.ReadToEnd());
    }
}
