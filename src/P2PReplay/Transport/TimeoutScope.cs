namespace P2PReplay.Transport;

/// <summary>A caller's token combined with a timeout measured by the injected TimeProvider.</summary>
internal sealed class TimeoutScope : IDisposable
{
    private readonly CancellationTokenSource _timer;
    private readonly CancellationTokenSource _linked;

    public TimeoutScope(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken, CancellationToken also = default)
    {
        _timer = new CancellationTokenSource(timeout, time);
        _linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, also, _timer.Token);
    }

    public CancellationToken Token => _linked.Token;

    /// <summary>True when the timeout (not the caller) cancelled the operation.</summary>
    public bool TimedOut => _timer.IsCancellationRequested;

    public void Dispose()
    {
        _linked.Dispose();
        _timer.Dispose();
    }
}
