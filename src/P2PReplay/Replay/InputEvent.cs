namespace P2PReplay.Replay;

/// <summary>The kinds of nondeterministic input the VM takes from the host.</summary>
public enum InputKind : byte
{
    Realtime = 1,
    Monotonic = 2,
    Random = 3,
    Stdin = 4,
    /// <summary>A batch of network events (<see cref="NetworkEvents"/>) taken at a socket syscall; Value is the count.</summary>
    Network = 5,
}

/// <summary>
/// One logged input: which vCPU took it at which exit, in which syscall (-1: outside a syscall, e.g. AT_RANDOM at
/// load or an emulated rdtsc), and its value: a clock reading or bytes.
/// </summary>
public sealed record InputEvent(int Vcpu, long Exit, int Syscall, InputKind Kind, long Value, byte[] Data)
{
    public void Encode(ByteWriter w)
    {
        w.VarU((ulong)Vcpu);
        w.VarU((ulong)Exit);
        w.VarI(Syscall);
        w.U8((byte)Kind);
        switch (Kind)
        {
            case InputKind.Realtime:
            case InputKind.Monotonic:
                w.VarI(Value);
                break;
            default:
                w.Bytes(Data);
                break;
        }
    }

    public static InputEvent Decode(ReadOnlySpan<byte> payload)
    {
        var r = new ByteReader(payload);
        int vcpu = r.Int32(1023);
        long exit = (long)r.VarU();
        long syscall = r.VarI();
        var kind = (InputKind)r.U8();
        long value = 0;
        byte[] data = [];
        switch (kind)
        {
            case InputKind.Realtime:
            case InputKind.Monotonic:
                value = r.VarI();
                break;
            case InputKind.Random:
            case InputKind.Stdin:
                data = r.Bytes().ToArray();
                value = data.Length;
                break;
            case InputKind.Network:
                data = r.Bytes().ToArray();
                value = NetworkEvents.Decode(data).Count;
                break;
            default:
                throw new FormatException($"unknown input kind {(byte)kind}");
        }
        if (!r.AtEnd) throw new FormatException("trailing bytes after an input event");
        if (exit < 0 || syscall < -1 || syscall > 4096) throw new FormatException("input event out of range");
        return new InputEvent(vcpu, exit, (int)syscall, kind, value, data);
    }

    public string Describe() => Kind switch
    {
        InputKind.Realtime => $"realtime clock {Value} ns",
        InputKind.Monotonic => $"monotonic clock {Value} ns",
        InputKind.Random => $"{Data.Length} random bytes",
        InputKind.Stdin => Data.Length == 0 ? "end of stdin" : $"{Data.Length} bytes of stdin",
        InputKind.Network => Value == 0 ? "no network events" : $"{Value} network event(s): {DescribeNetwork(Data)}",
        _ => Kind.ToString(),
    };

    private static string DescribeNetwork(byte[] data)
    {
        var events = NetworkEvents.Decode(data);
        var parts = events.Take(4).Select(e => e.Kind switch
        {
            Linux.Net.NetEventKind.Connected => $"connection {e.Connection} to port {e.Port}",
            Linux.Net.NetEventKind.Data => $"{e.Data?.Length ?? 0} bytes on {e.Connection}",
            _ => $"{e.Connection} closed by the peer",
        });
        return string.Join(", ", parts) + (events.Count > 4 ? ", ..." : "");
    }
}
