namespace P2PReplay.Transport;

/// <summary>Thread-safe counters for the status API.</summary>
internal sealed class TransportCounters
{
    private readonly long[] _handshakeRefusals = new long[Enum.GetValues<HandshakeFailure>().Length + 1];
    private readonly long[] _frameFailures = new long[Enum.GetValues<FrameFailure>().Length + 1];
    private long _framesIn;
    private long _framesOut;
    private long _bytesIn;
    private long _bytesOut;
    private long _framesDropped;
    private long _handshakesCompleted;

    public long FramesIn => Interlocked.Read(ref _framesIn);

    public long FramesOut => Interlocked.Read(ref _framesOut);

    public long BytesIn => Interlocked.Read(ref _bytesIn);

    public long BytesOut => Interlocked.Read(ref _bytesOut);

    /// <summary>Frames PeerNetwork dropped because the peer was unreachable.</summary>
    public long FramesDropped => Interlocked.Read(ref _framesDropped);

    public long HandshakesCompleted => Interlocked.Read(ref _handshakesCompleted);

    public long HandshakesRefused(HandshakeFailure reason) => Interlocked.Read(ref _handshakeRefusals[(int)reason]);

    public long FrameFailures(FrameFailure reason) => Interlocked.Read(ref _frameFailures[(int)reason]);

    public IReadOnlyDictionary<string, long> HandshakeRefusalsByReason() =>
        Enum.GetValues<HandshakeFailure>().Where(r => HandshakesRefused(r) > 0).ToDictionary(r => r.ToString(), HandshakesRefused);

    public IReadOnlyDictionary<string, long> FrameFailuresByReason() =>
        Enum.GetValues<FrameFailure>().Where(r => FrameFailures(r) > 0).ToDictionary(r => r.ToString(), FrameFailures);

    internal void FrameReceived(int wireBytes)
    {
        Interlocked.Increment(ref _framesIn);
        Interlocked.Add(ref _bytesIn, wireBytes);
    }

    internal void FrameSent(int wireBytes)
    {
        Interlocked.Increment(ref _framesOut);
        Interlocked.Add(ref _bytesOut, wireBytes);
    }

    internal void FrameDropped() => Interlocked.Increment(ref _framesDropped);

    internal void HandshakeCompleted() => Interlocked.Increment(ref _handshakesCompleted);

    internal void HandshakeRefused(HandshakeFailure reason) => Interlocked.Increment(ref _handshakeRefusals[(int)reason]);

    internal void FrameFailed(FrameFailure reason) => Interlocked.Increment(ref _frameFailures[(int)reason]);
}
