using P2PReplay.Vmm;

namespace P2PReplay.Cluster.Vms;

/// <summary>
/// The running microVM of a VM copy, as other threads may touch it: set only while the machine exists, so stopping
/// never kicks a disposed vCPU (its kvm_run is unmapped); the exit count stays readable afterwards.
/// </summary>
internal sealed class MachineHandle
{
    private readonly Lock gate = new();
    private MicroVm? machine;
    private long lastExits;

    public MicroVm? Current => machine;

    public long Exits => machine?.Runner.Exits ?? lastExits;

    public void Set(MicroVm? running)
    {
        lock (gate)
        {
            if (running is null && machine is not null) lastExits = machine.Runner.Exits;
            machine = running;
        }
    }

    /// <summary>Asks the vCPU to stop (a signal plus immediate_exit); nothing if the machine is gone.</summary>
    public void Pause()
    {
        lock (gate) machine?.Runner.RequestPause();
    }
}
