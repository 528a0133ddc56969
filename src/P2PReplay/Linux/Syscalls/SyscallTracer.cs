using System.Text;
using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.Syscalls;

/// <summary>strace-style lines: name(decoded args) = result, written after each call.</summary>
public sealed class SyscallTracer(TextWriter output)
{
    private const int MaxShownBytes = 32;
    private const int AtFdCwd = -100;
    private static readonly ArgKind[] RawArguments = [ArgKind.Hex, ArgKind.Hex, ArgKind.Hex, ArgKind.Hex, ArgKind.Hex, ArgKind.Hex];

    public void TraceUnknown(in SyscallArgs a) =>
        output.WriteLine($"syscall_{a.Number}(0x{a.A0:x}, 0x{a.A1:x}, 0x{a.A2:x}, 0x{a.A3:x}, 0x{a.A4:x}, 0x{a.A5:x}) = -1 ENOSYS");

    public void Trace(LinuxProcess process, SyscallDescriptor row, in SyscallArgs a, long result)
    {
        var line = new StringBuilder(96);
        line.Append(row.Name).Append('(');
        var kinds = row.Args;
        if (row.Level == SupportLevel.Unsupported && kinds.Length == 0) kinds = RawArguments;
        for (int i = 0; i < kinds.Length && i < 6; i++)
        {
            if (i > 0) line.Append(", ");
            AppendArg(line, process, kinds[i], a[i], i + 1 < 6 ? a[i + 1] : 0, result);
        }
        line.Append(") = ");
        if (process.HasExited)
        {
            line.Append('?');
        }
        else if (result < 0 && result >= -4095)
        {
            int errno = (int)-result;
            line.Append("-1 ").Append(Errno.Name(errno));
            if (row.Level == SupportLevel.Unsupported) line.Append(" (not implemented)");
        }
        else if (row.Args.Length > 0 && (row.Name is "mmap" or "brk" or "mremap"))
        {
            line.Append("0x").Append(result.ToString("x"));
        }
        else
        {
            line.Append(result);
        }
        output.WriteLine(line.ToString());
    }

    private static void AppendArg(StringBuilder line, LinuxProcess process, ArgKind kind, ulong value, ulong next, long result)
    {
        switch (kind)
        {
            case ArgKind.Int:
            case ArgKind.Fd:
                line.Append(unchecked((int)value)); // the kernel reads int arguments from the low 32 bits
                break;
            case ArgKind.DirFd:
                if (unchecked((int)value) == AtFdCwd) line.Append("AT_FDCWD");
                else line.Append(unchecked((int)value));
                break;
            case ArgKind.Size:
                line.Append(value);
                break;
            case ArgKind.Octal:
                line.Append("0").Append(Convert.ToString((long)(value & 0xffffffff), 8));
                break;
            case ArgKind.Signal:
                line.Append(Signals.Name(unchecked((int)value)));
                break;
            case ArgKind.Path:
                if (value == 0) line.Append("NULL");
                else if (process.Memory.TryReadCString(value, 4096, out string path) == 0) AppendQuoted(line, Encoding.UTF8.GetBytes(path), path.Length);
                else line.Append("0x").Append(value.ToString("x"));
                break;
            case ArgKind.InBuffer:
                AppendBuffer(line, process, value, next);
                break;
            case ArgKind.OutBuffer:
                if (result > 0) AppendBuffer(line, process, value, (ulong)result);
                else line.Append("0x").Append(value.ToString("x"));
                break;
            default:
                line.Append("0x").Append(value.ToString("x"));
                break;
        }
    }

    private static void AppendBuffer(StringBuilder line, LinuxProcess process, ulong address, ulong length)
    {
        int shown = (int)Math.Min(length, MaxShownBytes);
        if (process.Memory.TryGetReadable(address, shown, out var bytes)) AppendQuoted(line, bytes, (long)Math.Min(length, int.MaxValue));
        else line.Append("0x").Append(address.ToString("x"));
    }

    private static void AppendQuoted(StringBuilder line, ReadOnlySpan<byte> bytes, long fullLength)
    {
        line.Append('"');
        foreach (byte b in bytes)
        {
            switch (b)
            {
                case (byte)'\n': line.Append("\\n"); break;
                case (byte)'\t': line.Append("\\t"); break;
                case (byte)'"': line.Append("\\\""); break;
                case (byte)'\\': line.Append("\\\\"); break;
                default:
                    if (b >= 0x20 && b < 0x7f) line.Append((char)b);
                    else line.Append("\\x").Append(b.ToString("x2"));
                    break;
            }
        }
        line.Append('"');
        if (fullLength > bytes.Length) line.Append("...");
    }
}
