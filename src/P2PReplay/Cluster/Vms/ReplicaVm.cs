using Microsoft.Extensions.Logging;
using P2PReplay.Replay;
using P2PReplay.Replay.Format;
using P2PReplay.Transport;
using P2PReplay.Vmm;

namespace P2PReplay.Cluster.Vms;

/// <summary>
/// This node's replica of a VM: receives the primary's log as it is written and replays it live in its own
/// microVM, checking every digest; acknowledges what it received and how far it replayed every 50 ms.
/// </summary>
internal sealed class ReplicaVm : IDisposable
{
    private static readonly TimeSpan AckInterval = TimeSpan.FromMilliseconds(50);

    private readonly Placement placement;
    private readonly string primaryAddress;
    private readonly PeerNetwork network;
    private readonly ILogger logger;
    private readonly Func<long> nowMs;
    private readonly LiveLogStream stream = new();
    private readonly VmOutput output = new();
    private readonly CancellationTokenSource stopping = new();
    private readonly Thread thread;
    private Task? acks;
    private MicroVm? vm;

    public ReplicaState State { get; private set; } = ReplicaState.Waiting;
    public string? Error { get; private set; }
    public long ReplayedExits => vm?.Runner.Exits ?? 0;
    public long ReceivedBytes => stream.Received;
    public long PrimaryExits { get; private set; }
    public long PrimaryLogBytes { get; private set; }
    public long LastHeardMs { get; private set; }
    public VmOutput Output => output;
    public string? ExitStatus { get; private set; }

    public ReplicaVm(Placement placement, string primaryAddress, PeerNetwork network, ILogger logger, Func<long> nowMs)
    {
        this.placement = placement;
        this.primaryAddress = primaryAddress;
        this.network = network;
        this.logger = logger;
        this.nowMs = nowMs;
        LastHeardMs = nowMs();
        thread = new Thread(Run) { IsBackground = true, Name = $"replica {placement.Vm}" };
    }

    public void Start()
    {
        thread.Start();
        acks = Task.Run(AckLoopAsync);
    }

    /// <summary>Log data or a heartbeat from the primary (network thread).</summary>
    public void OnMessage(VmMessage message)
    {
        LastHeardMs = nowMs();
        switch (message.Type)
        {
            case VmMessageType.LogData:
                // A gap or repeat is ignored: the ack tells the primary where to resume.
                stream.Offer(message.Offset, message.Data.Span);
                break;
            case VmMessageType.Heartbeat:
                PrimaryExits = message.Exit;
                PrimaryLogBytes = (long)message.LogBytes;
                break;
        }
    }

    private void Run()
    {
        try
        {
            using var replayer = new Replayer(stream);
            var config = RecordingSession.RecreateConfiguration(replayer.Header, null, null);
            using var machine = MicroVm.Create(config, new ReplayingHost(replayer, new VmHost(output, () => vm?.Runner.Exits ?? 0)), null);
            vm = machine;
            RecordingSession.Attach(machine, replayer);
            State = ReplicaState.Replaying;
            var status = machine.Run();
            State = ReplicaState.Finished;
            ExitStatus = status is null ? "stopped" : $"exited {status.ShellStatus}, {replayer.DigestsChecked} digests verified";
        }
        catch (ReplayDivergenceException e)
        {
            State = ReplicaState.Diverged;
            Error = e.Message;
            VmLog.ReplicaDiverged(logger, placement.Vm, e.Message);
        }
        catch (Exception e) when (e is ReplayTruncatedException && stopping.IsCancellationRequested)
        {
            State = ReplicaState.Finished;
            ExitStatus = "stopped";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            State = ReplicaState.Failed;
            Error = e is LogFormatException ? $"unreadable log from the primary: {e.Message}" : e.Message;
            VmLog.ReplicaFailed(logger, placement.Vm, Error);
        }
    }

    private async Task AckLoopAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await network.SendAsync(primaryAddress, ChannelKind.VmLog,
                    VmMessage.Ack(placement.Vm, placement.Epoch, (ulong)stream.Received, ReplayedExits, State).Encode(), compress: false, stopping.Token).ConfigureAwait(false);
                await Task.Delay(AckInterval, stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
        }
    }

    public void Dispose()
    {
        stopping.Cancel();
        stream.Close(abandon: true);
        vm?.Runner.RequestPause();
        if (!thread.Join(TimeSpan.FromSeconds(5))) VmLog.SlowStop(logger, placement.Vm, "replica");
        try
        {
            acks?.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
        stopping.Dispose();
    }
}
