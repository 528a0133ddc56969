using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using P2PReplay.Transport;

namespace P2PReplay.Tests.Transport;

/// <summary>ILogger that keeps formatted lines so tests can assert what was logged.</summary>
internal sealed class CapturingLogger : ILogger
{
    private readonly List<(LogLevel Level, string Message)> _lines = [];

    public IReadOnlyList<(LogLevel Level, string Message)> Lines
    {
        get
        {
            lock (_lines) return [.. _lines];
        }
    }

    public bool Contains(string text) => Lines.Any(l => l.Message.Contains(text, StringComparison.Ordinal));

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lines) _lines.Add((logLevel, formatter(state, exception)));
    }
}

/// <summary>Clock the test moves by hand; timers stay real so timeouts still fire.</summary>
internal sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public void Advance(TimeSpan by) => _now += by;

    public override DateTimeOffset GetUtcNow() => _now;
}

/// <summary>Deterministic ISecureRandom (System.Random with a seed).</summary>
internal sealed class SeededRandom(int seed) : ISecureRandom
{
    private readonly Random _random = new(seed);

    public void Fill(Span<byte> destination)
    {
        lock (_random) _random.NextBytes(destination);
    }
}

/// <summary>One end of an in-memory duplex byte stream; optionally records everything it writes.</summary>
internal sealed class DuplexEnd(ChannelReader<byte[]> incoming, ChannelWriter<byte[]> outgoing) : Stream
{
    private byte[] _pending = [];
    private int _offset;

    public List<byte[]> Written { get; } = [];

    public static (DuplexEnd A, DuplexEnd B) CreatePair()
    {
        var aToB = Channel.CreateUnbounded<byte[]>();
        var bToA = Channel.CreateUnbounded<byte[]>();
        return (new DuplexEnd(bToA.Reader, aToB.Writer), new DuplexEnd(aToB.Reader, bToA.Writer));
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_offset == _pending.Length)
        {
            if (!await incoming.WaitToReadAsync(cancellationToken).ConfigureAwait(false)) return 0;
            if (incoming.TryRead(out byte[]? next))
            {
                _pending = next;
                _offset = 0;
            }
        }

        int count = Math.Min(buffer.Length, _pending.Length - _offset);
        _pending.AsMemory(_offset, count).CopyTo(buffer);
        _offset += count;
        return count;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        byte[] copy = buffer.ToArray();
        lock (Written) Written.Add(copy);
        outgoing.TryWrite(copy);
        return ValueTask.CompletedTask;
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        outgoing.TryComplete();
        base.Dispose(disposing);
    }
}

/// <summary>A node's transport context for tests.</summary>
internal static class TestNodes
{
    public static readonly ClusterSecret Secret = ClusterSecret.FromBytes(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());

    public static PeerContext Context(int seed, ClusterSecret? secret = null, TimeProvider? time = null, ILogger? logger = null, TransportOptions? options = null) =>
        new(NodeIdentity.Create(new SeededRandom(seed)), secret ?? Secret, options, time, new SeededRandom(seed + 1000), logger);
}
