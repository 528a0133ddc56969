using System.Text.Json;
using P2PReplay.Linux;
using P2PReplay.Linux.Syscalls;
using P2PReplay.Replay.Format;

namespace P2PReplay.Replay;

/// <summary>
/// Feeds a recording back: inputs to the guest through <see cref="ReplayingHost"/>, and after each exit checks that
/// the recording expects nothing else there and that the digests logged for that exit match. The first mismatch
/// throws <see cref="ReplayDivergenceException"/>; the end of a cut-off log throws <see cref="ReplayTruncatedException"/>.
/// </summary>
public sealed class Replayer : IDisposable
{
    private readonly LogReader _reader;
    private LogRecord? _next;
    // The pending record decoded once: replay looks at it after every exit until its exit comes.
    private InputEvent? _nextInput;
    private StateDigest? _nextDigest;

    public Replayer(Stream input)
    {
        _reader = new LogReader(input);
        if (!_reader.TryRead(out var first) || first.Kind != LogRecordKind.Header)
            throw new LogFormatException("the log does not start with a header record");
        HeaderJson = first.Payload.ToArray();
        Header = ParseHeader(HeaderJson);
    }

    /// <summary>
    /// Continues a replay from a VM snapshot: <paramref name="tail"/> is the log from byte <see cref="ReplayResumePoint.Position"/>.Offset
    /// on (a chunk boundary; nothing before it is needed). The counters, the output digest and the header come from the
    /// snapshot. A tail that starts elsewhere fails with a <see cref="LogFormatException"/> at its first chunk.
    /// </summary>
    public Replayer(Stream tail, ReplayResumePoint resume)
    {
        ArgumentNullException.ThrowIfNull(resume);
        HeaderJson = resume.HeaderJson;
        Header = ParseHeader(HeaderJson);
        _reader = new LogReader(tail, resume.Position.Chunk, resume.Position.Offset);
        try
        {
            for (int skip = 0; skip < resume.Position.Index; skip++)
            {
                if (!_reader.TryRead(out var skipped))
                    throw new ReplayTruncatedException($"the log tail ends before record {resume.Position.Index} of chunk {resume.Position.Chunk}, where the snapshot resumes");
                if (skipped.Chunk != resume.Position.Chunk)
                    throw new LogFormatException($"chunk {resume.Position.Chunk} of the log tail has only {skip} records; the snapshot resumes at record {resume.Position.Index}");
            }
        }
        catch
        {
            _reader.Dispose();
            throw;
        }
        Events = resume.Events;
        DigestsChecked = resume.DigestsChecked;
        LastDigestExit = resume.LastDigestExit;
        Output.Restore(resume.OutputHash, resume.OutputBytes);
    }

    private static LogHeader ParseHeader(byte[] json)
    {
        LogHeader header;
        try
        {
            header = JsonSerializer.Deserialize(json, LogJsonContext.Default.LogHeader)
                ?? throw new LogFormatException("the log header is empty");
        }
        catch (JsonException e)
        {
            throw new LogFormatException($"the log header is not valid: {e.Message}");
        }
        if (header.DigestMemory is not (DigestMemory.Mapped or DigestMemory.Written))
            throw new LogFormatException($"the log header names an unknown digest mode '{header.DigestMemory}'");
        if (header.Version != LogHeader.CurrentVersion)
            throw new LogFormatException($"recording version {header.Version} is not supported; this p2preplay replays version {LogHeader.CurrentVersion}");
        return header;
    }

    /// <summary>The header record's bytes as recorded (a snapshot carries them, since the tail lacks the header).</summary>
    public byte[] HeaderJson { get; }

    /// <summary>
    /// Where the replay stands between exits, for a VM snapshot taken now: the log position of the first record not
    /// yet used, and the counters a continuing replay needs. Call it on the vCPU thread at an exit boundary.
    /// </summary>
    public ReplayResumePoint ResumePoint()
    {
        var position = _next is { } pending ? new LogPosition(pending.Chunk, pending.Offset, pending.Index) : _reader.Position;
        return new ReplayResumePoint(HeaderJson, position, Events, DigestsChecked, LastDigestExit, Output.Value, Output.Bytes);
    }

    public LogHeader Header { get; }

    public LinuxProcess? Process { get; set; }

    public Func<long> CurrentExit { get; set; } = static () => 0;

    public OutputDigest Output { get; } = new();

    public long Events { get; private set; }

    public long DigestsChecked { get; private set; }

    public LogTrailer? Trailer { get; private set; }

    public int ChunksRead => _reader.ChunksRead;

    /// <summary>The exit of the last digest checked (the recorder that takes over continues the schedule from it).</summary>
    public long LastDigestExit { get; private set; }

    /// <summary>Every record of a cut-off log has been used: nothing more to replay unless more bytes arrive.</summary>
    public bool AtEndOfLog => Trailer is null && Peek() is null && _reader.End == LogEnd.Truncated;

    public long BytesRead => _reader.LastGoodOffset;

    /// <summary>The next input; it must be of this kind, at this exit, in this syscall.</summary>
    public InputEvent NextInput(InputKind kind)
    {
        long exit = CurrentExit();
        var record = Peek() ?? throw Truncated(exit);
        if (record.Kind != LogRecordKind.Event)
            throw Diverged(exit, $"the replay asks for {Describe(kind)}, but the recording has no input here (its next record is a {KindName(record.Kind)} at exit {NextExit})");
        var input = _nextInput!;
        int syscall = Process?.CurrentSyscall ?? -1;
        if (input.Exit != exit || input.Kind != kind || input.Syscall != syscall)
            throw Diverged(exit, $"the replay asks for {Describe(kind)} in {SyscallName(syscall)}; the recording has {input.Describe()} in {SyscallName(input.Syscall)} at exit {input.Exit}");
        _next = null;
        Events++;
        return input;
    }

    /// <summary>After each exit: the recording must not hold an input the replay skipped; digests logged here must match.</summary>
    public void AfterExit(long exit, bool guestExited)
    {
        while (Peek() is { } record)
        {
            switch (record.Kind)
            {
                case LogRecordKind.Event:
                    var input = _nextInput!;
                    if (input.Exit > exit) return;
                    throw Diverged(exit, $"the recording has {input.Describe()} in {SyscallName(input.Syscall)} at exit {input.Exit}, which the replay never asked for");
                case LogRecordKind.Digest:
                    var recorded = _nextDigest!;
                    if (recorded.Exit > exit) return;
                    if (recorded.Exit < exit) throw Diverged(exit, $"the recording has a digest at exit {recorded.Exit}, which the replay passed without stopping");
                    var replayed = StateDigest.Capture(exit, Process!, Output.Value, Header.DigestMemory);
                    if (recorded.FirstDifference(replayed) is { } difference) throw Diverged(exit, difference);
                    DigestsChecked++;
                    LastDigestExit = exit;
                    _next = null;
                    break;
                case LogRecordKind.Trailer:
                    if (!guestExited) return; // the trailer's exit count is checked when the guest ends
                    Trailer = Decode(record, (ReadOnlySpan<byte> payload) => JsonSerializer.Deserialize(payload, LogJsonContext.Default.LogTrailer)
                        ?? throw new FormatException("empty trailer"));
                    _next = null;
                    var status = Process!.Exit!;
                    if (Trailer.Exits != exit || Trailer.Status != status.ShellStatus)
                        throw Diverged(exit, $"the recorded run ended at exit {Trailer.Exits} with status {Trailer.Status}; the replay ended at exit {exit} with status {status.ShellStatus}");
                    return;
                default:
                    throw new LogFormatException($"unexpected record kind {record.Kind} in chunk {record.Chunk}");
            }
        }
        // Every record has been used. A complete log ends with its trailer (handled above); a cut-off one ends here:
        // nothing recorded past this point can be checked, so the replay stops rather than run on unverified.
        if (Trailer is null && _reader.End == LogEnd.Truncated) throw Truncated(exit);
    }

    private LogRecord? Peek()
    {
        if (_next is null && _reader.TryRead(out var record))
        {
            _next = record;
            _nextInput = record.Kind == LogRecordKind.Event ? Decode(record, InputEvent.Decode) : null;
            _nextDigest = record.Kind == LogRecordKind.Digest ? Decode(record, StateDigest.Decode) : null;
        }
        return _next;
    }

    private static T Decode<T>(LogRecord record, DecodeSpan<T> decode)
    {
        try
        {
            return decode(record.Payload.Span);
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            throw new LogCorruptException(record.Chunk, record.Offset, $"it holds a malformed {KindName(record.Kind)} record: {e.Message}", e);
        }
    }

    private delegate T DecodeSpan<T>(ReadOnlySpan<byte> payload);

    private ReplayDivergenceException Diverged(long exit, string what) => new(0, exit, SyscallName(Process), what);

    private static string SyscallName(LinuxProcess? process) => process switch
    {
        { CurrentSyscall: >= 0 } p => SyscallNames.Get(p.CurrentSyscall),
        { LastSyscall: >= 0 } p => SyscallNames.Get(p.LastSyscall),
        _ => "",
    };

    private ReplayTruncatedException Truncated(long exit) => new(
        $"the log ends after chunk {_reader.ChunksRead - 1} (byte {_reader.LastGoodOffset}): the recording was cut off there. " +
        $"Replayed and verified up to exit {exit} ({DigestsChecked} digests checked).");

    private long NextExit => _nextInput?.Exit ?? _nextDigest?.Exit ?? -1;

    private static string KindName(byte kind) => kind switch
    {
        LogRecordKind.Header => "header",
        LogRecordKind.Event => "input",
        LogRecordKind.Digest => "digest",
        LogRecordKind.Trailer => "trailer",
        _ => $"kind-{kind}",
    };

    private static string Describe(InputKind kind) => kind switch
    {
        InputKind.Realtime => "the realtime clock",
        InputKind.Monotonic => "the monotonic clock",
        InputKind.Random => "random bytes",
        InputKind.Stdin => "stdin",
        InputKind.Network => "network events",
        _ => kind.ToString(),
    };

    private static string SyscallName(int number) => number < 0 ? "no syscall (program load or a trapped instruction)" : SyscallNames.Get(number);

    public void Dispose() => _reader.Dispose();
}

/// <summary>Where a replay continues after a VM snapshot: the log header, the position of the next record, and the counters.</summary>
public sealed record ReplayResumePoint(byte[] HeaderJson, LogPosition Position, long Events, long DigestsChecked, long LastDigestExit,
    ulong OutputHash, long OutputBytes);

/// <summary>The host during replay: inputs come from the log, sleeps take no time, output is hashed and shown.</summary>
public sealed class ReplayingHost(Replayer replayer, IHostEnvironment? output) : IHostEnvironment
{
    /// <summary>Network batches come from the log; <see cref="NetworkObserver"/> (tests) sees what the guest sends.</summary>
    public Linux.Net.IHostNetwork Network => _network ??= new ReplayingNetwork(replayer, NetworkObserver);

    private Linux.Net.IHostNetwork? _network;

    /// <summary>Set before the VM is created to watch the replay's network output (never a real network).</summary>
    public Linux.Net.IHostNetwork? NetworkObserver { get; set; }

    public long RealtimeNanoseconds() => replayer.NextInput(InputKind.Realtime).Value;

    public long MonotonicNanoseconds() => replayer.NextInput(InputKind.Monotonic).Value;

    public void Sleep(long nanoseconds)
    {
        // The recording already took the time; what the guest sees next comes from the log.
    }

    public void GetRandomBytes(Span<byte> buffer)
    {
        var input = replayer.NextInput(InputKind.Random);
        if (input.Data.Length != buffer.Length)
            throw new ReplayDivergenceException(0, input.Exit, "", $"the replay asks for {buffer.Length} random bytes; the recording has {input.Data.Length}");
        input.Data.CopyTo(buffer);
    }

    public int ReadStdin(Span<byte> buffer)
    {
        var input = replayer.NextInput(InputKind.Stdin);
        if (input.Data.Length > buffer.Length)
            throw new ReplayDivergenceException(0, input.Exit, "read", $"the replay reads at most {buffer.Length} bytes of stdin; the recording read {input.Data.Length}");
        input.Data.CopyTo(buffer);
        return input.Data.Length;
    }

    public void WriteOutput(int fd, ReadOnlySpan<byte> data)
    {
        replayer.Output.Add(fd, data);
        output?.WriteOutput(fd, data);
    }
}
