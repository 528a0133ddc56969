using System.Text.Json;
using P2PReplay.Linux.Syscalls;
using P2PReplay.Replay;
using P2PReplay.Replay.Format;

namespace P2PReplay.Cli;

/// <summary>`p2preplay log inspect LOG`: the header and a readable listing of a recording.</summary>
internal static class LogCommand
{
    public static int Execute(ReadOnlySpan<string> args)
    {
        if (args.Length != 2 || args[0] != "inspect") throw new UsageException("usage: p2preplay log inspect LOG");
        string path = args[1];
        var output = Console.Out;
        try
        {
            using var log = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
            using var reader = new LogReader(log);
            long events = 0, digests = 0;
            while (reader.TryRead(out var record))
            {
                output.WriteLine(Describe(record, ref events, ref digests));
            }
            output.WriteLine(reader.End == LogEnd.Complete
                ? $"-- end of recording: {reader.RecordsRead} records, {events} inputs, {digests} digests, {reader.ChunksRead} chunks, {log.Length} bytes"
                : $"-- the log is cut off after chunk {reader.ChunksRead - 1} (byte {reader.LastGoodOffset} of {log.Length}): the recording did not finish");
            return 0;
        }
        catch (LogFormatException e)
        {
            output.Flush();
            Console.Error.WriteLine($"p2preplay: {path}: {e.Message}");
            return ReplayCommand.Unreadable;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"p2preplay: {e.Message}");
            return ReplayCommand.Unreadable;
        }
    }

    private static string Describe(LogRecord record, ref long events, ref long digests)
    {
        try
        {
            switch (record.Kind)
            {
                case LogRecordKind.Header:
                    var header = JsonSerializer.Deserialize(record.Payload.Span, LogJsonContext.Default.LogHeader)!;
                    return string.Join('\n',
                        $"recording, format version {header.Version}",
                        $"  program   {header.ProgramPath} (sha256 {header.ProgramSha256})",
                        $"  image     {header.ImageRoot ?? "(empty root)"} (sha256 {header.ImageSha256})",
                        $"  argv      {string.Join(' ', header.Arguments.Select(Quote))}",
                        $"  env       {(header.Environment.Count == 0 ? "(none)" : string.Join(' ', header.Environment.Select(Quote)))}",
                        $"  memory    {header.MemorySize >> 20} MiB",
                        $"  host      {header.HostCpu}{(header.TimeStampCounterTrapped ? "" : " (rdtsc/cpuid not trapped)")}",
                        $"  cpuid     {header.Cpuid.Count} leaves",
                        $"  digests   every {header.DigestInterval} exits{(header.DigestRateLimited ? " (rate-limited)" : "")}, over {header.DigestMemory} memory");
                case LogRecordKind.Event:
                    events++;
                    var input = InputEvent.Decode(record.Payload.Span);
                    string where = input.Syscall >= 0 ? SyscallNames.Get(input.Syscall) : "(load/trap)";
                    string data = input.Kind is InputKind.Stdin or InputKind.Random && input.Data.Length > 0
                        ? " " + Convert.ToHexStringLower(input.Data.AsSpan(0, Math.Min(16, input.Data.Length))) + (input.Data.Length > 16 ? "..." : "")
                        : "";
                    return $"exit {input.Exit,8}  vcpu {input.Vcpu}  {where,-16} {input.Describe()}{data}";
                case LogRecordKind.Digest:
                    digests++;
                    var digest = StateDigest.Decode(record.Payload.Span);
                    string after = digest.Syscall >= 0 ? SyscallNames.Get(digest.Syscall) : "(trap)";
                    return $"exit {digest.Exit,8}  digest  {after,-16} rip 0x{digest.Registers[16]:x} rsp 0x{digest.Registers[6]:x}, {digest.Memory.Length} memory blocks, state {digest.Combined():x16}";
                case LogRecordKind.Trailer:
                    var trailer = JsonSerializer.Deserialize(record.Payload.Span, LogJsonContext.Default.LogTrailer)!;
                    return $"end: {trailer.Exits} exits, {trailer.Events} inputs, {trailer.Digests} digests, exit status {trailer.Status}";
                default:
                    return $"unknown record kind {record.Kind} ({record.Payload.Length} bytes) in chunk {record.Chunk}";
            }
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            throw new LogCorruptException(record.Chunk, record.Offset, $"it holds a malformed record: {e.Message}", e);
        }
    }

    private static string Quote(string s) => s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || "/._-=+,:".Contains(c)) ? s : $"'{s.Replace("'", "'\\''")}'";
}
