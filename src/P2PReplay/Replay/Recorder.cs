using System.Diagnostics;
using System.Text.Json;
using P2PReplay.Linux;
using P2PReplay.Replay.Format;

namespace P2PReplay.Replay;

/// <summary>
/// Writes a recording: the header, every input the host hands the guest (through <see cref="RecordingHost"/>),
/// state digests after exits, and the trailer. Digests come every <see cref="LogHeader.DigestInterval"/> exits; with
/// <see cref="LogHeader.DigestRateLimited"/> a due digest is skipped while it would cost more than about 2% of the
/// run (large memories). The exits that got one are in the log, so replay checks exactly those.
/// </summary>
public sealed class Recorder : IDisposable
{
    private const int MaxDigestShare = 50; // a digest may take at most 1/50 of the time since the previous one

    private readonly LogWriter _writer;
    private readonly ByteWriter _buffer = new();
    private readonly long _interval;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _lastDigestExit;
    private TimeSpan _lastDigestAt;
    private TimeSpan _lastDigestCost;

    /// <param name="chunkTargetBytes">chunk size of the log (small chunks: finer log truncation behind snapshots)</param>
    public Recorder(Stream output, LogHeader header, int chunkTargetBytes = 64 * 1024)
    {
        Header = header;
        _interval = Math.Max(1, header.DigestInterval);
        _writer = new LogWriter(output, chunkTargetBytes);
        _writer.Append(LogRecordKind.Header, JsonSerializer.SerializeToUtf8Bytes(header, LogJsonContext.Default.LogHeader));
        _writer.Flush();
    }

    /// <summary>
    /// Goes on recording a run whose log so far was replayed (a replica promoted to primary): the new records append
    /// to the same log (chunk sequence, event and digest counts, output hash and digest schedule continue).
    /// </summary>
    public Recorder(Stream output, Replayer replayed)
    {
        ArgumentNullException.ThrowIfNull(replayed);
        Header = replayed.Header;
        _interval = Math.Max(1, Header.DigestInterval);
        _writer = LogWriter.Continuing(output, replayed.ChunksRead);
        Output = replayed.Output;
        Events = replayed.Events;
        Digests = replayed.DigestsChecked;
        _lastDigestExit = replayed.LastDigestExit;
    }

    public LogHeader Header { get; }

    /// <summary>The process being recorded; set once the VM exists.</summary>
    public LinuxProcess? Process { get; set; }

    /// <summary>The current exit ordinal of vCPU 0; set once the VM exists (0 before the first exit).</summary>
    public Func<long> CurrentExit { get; set; } = static () => 0;

    public OutputDigest Output { get; } = new();

    public long Events { get; private set; }

    public long Digests { get; private set; }

    public long LogBytes => _writer.BytesWritten;

    public int Chunks => _writer.ChunkCount;

    public void LogInput(InputKind kind, long value, ReadOnlySpan<byte> data)
    {
        _buffer.Clear();
        new InputEvent(0, CurrentExit(), Process?.CurrentSyscall ?? -1, kind, value, data.ToArray()).Encode(_buffer);
        _writer.Append(LogRecordKind.Event, _buffer.Written);
        Events++;
    }

    /// <summary>After each exit: a digest when one is due; at the guest's end a final digest and the trailer.</summary>
    public void AfterExit(long exit, bool guestExited)
    {
        if (guestExited)
        {
            WriteDigest(exit);
            var status = Process!.Exit!;
            var trailer = new LogTrailer { Exits = exit, Events = Events, Digests = Digests, Status = status.ShellStatus, Signal = status.Signal };
            _writer.Complete(LogRecordKind.Trailer, JsonSerializer.SerializeToUtf8Bytes(trailer, LogJsonContext.Default.LogTrailer));
            return;
        }
        if (exit - _lastDigestExit < _interval) return;
        if (Header.DigestRateLimited && _clock.Elapsed - _lastDigestAt < _lastDigestCost * MaxDigestShare) return;
        WriteDigest(exit);
    }

    private void WriteDigest(long exit)
    {
        var started = _clock.Elapsed;
        _buffer.Clear();
        StateDigest.Capture(exit, Process!, Output.Value, Header.DigestMemory).Encode(_buffer);
        _writer.Append(LogRecordKind.Digest, _buffer.Written);
        // Everything up to a digest reaches the file: a recording killed later still replays up to here.
        _writer.Flush();
        Digests++;
        _lastDigestExit = exit;
        _lastDigestAt = _clock.Elapsed;
        _lastDigestCost = _lastDigestAt - started;
    }

    /// <summary>Ends the current chunk now, so a live reader (a replica) gets what was recorded so far.</summary>
    public void Flush() => _writer.Flush();

    public void Dispose() => _writer.Dispose();
}

/// <summary>The real host, with every input it hands the guest written to the recording.</summary>
public sealed class RecordingHost(IHostEnvironment inner, Recorder recorder) : IHostEnvironment
{
    public Linux.Net.IHostNetwork Network { get; } = new RecordingNetwork(inner.Network, recorder);

    public long RealtimeNanoseconds()
    {
        long value = inner.RealtimeNanoseconds();
        recorder.LogInput(InputKind.Realtime, value, []);
        return value;
    }

    public long MonotonicNanoseconds()
    {
        long value = inner.MonotonicNanoseconds();
        recorder.LogInput(InputKind.Monotonic, value, []);
        return value;
    }

    public void Sleep(long nanoseconds) => inner.Sleep(nanoseconds);

    public void GetRandomBytes(Span<byte> buffer)
    {
        inner.GetRandomBytes(buffer);
        recorder.LogInput(InputKind.Random, buffer.Length, buffer);
    }

    public int ReadStdin(Span<byte> buffer)
    {
        int read = inner.ReadStdin(buffer);
        recorder.LogInput(InputKind.Stdin, read, buffer[..Math.Max(0, read)]);
        return read;
    }

    public void WriteOutput(int fd, ReadOnlySpan<byte> data)
    {
        recorder.Output.Add(fd, data);
        inner.WriteOutput(fd, data);
    }
}
