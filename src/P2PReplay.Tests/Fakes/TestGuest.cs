using System.Runtime.InteropServices;
using System.Text;
using P2PReplay.Linux;
using P2PReplay.Linux.FileSystem;
using P2PReplay.Linux.Memory;
using P2PReplay.Linux.Syscalls;

namespace P2PReplay.Tests.Fakes;

/// <summary>
/// A LinuxProcess over plain host memory (no KVM) with a scratch region for syscall arguments:
/// Call(n, ...) runs a syscall handler; Str/Put/Alloc place data in the scratch region.
/// </summary>
public sealed unsafe class TestGuest : IDisposable
{
    public const ulong MemorySize = 64UL << 20;
    public const ulong ScratchStart = 0x100000;
    public const ulong ScratchSize = 4UL << 20;

    private readonly byte* _backing;
    private ulong _next = ScratchStart;

    public TestGuest(string? imageRoot = null, IReadOnlyDictionary<string, byte[]>? extraFiles = null, FakeHost? host = null,
        string executablePath = "/bin/test")
    {
        _backing = (byte*)NativeMemory.AllocZeroed((nuint)MemorySize);
        Memory = new GuestMemory(_backing, MemorySize);
        Host = host ?? new FakeHost();
        FileSystem = new VirtualFileSystem(imageRoot, extraFiles ?? new Dictionary<string, byte[]>());
        Process = new LinuxProcess(Memory, new NullPageMapper(Memory), Host, FileSystem, executablePath);
        Process.AddressSpace.MapFixed(ScratchStart, ScratchSize, Protection.Read | Protection.Write);
        Process.Notice = Notices.Add;
    }

    public GuestMemory Memory { get; }

    public FakeHost Host { get; }

    public VirtualFileSystem FileSystem { get; }

    public LinuxProcess Process { get; }

    public List<string> Notices { get; } = [];

    /// <summary>Runs syscall <paramref name="number"/> through the table.</summary>
    public long Call(int number, ulong a0 = 0, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0) =>
        SyscallTable.ByNumber[number].Handler(Process, new SyscallArgs(number, a0, a1, a2, a3, a4, a5));

    public long Call(int number, long a0, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0) =>
        Call(number, (ulong)a0, (ulong)a1, (ulong)a2, (ulong)a3, (ulong)a4, (ulong)a5);

    /// <summary>Reserves scratch bytes (8-byte aligned; wraps around when the region is used up).</summary>
    public ulong Alloc(int size)
    {
        ulong aligned = ((ulong)size + 7) & ~7UL;
        if (_next + aligned > ScratchStart + ScratchSize) _next = ScratchStart;
        ulong address = _next;
        _next += aligned;
        Memory.UncheckedSpan(address, size).Clear();
        return address;
    }

    public ulong Put(ReadOnlySpan<byte> bytes)
    {
        ulong address = Alloc(bytes.Length);
        bytes.CopyTo(Memory.UncheckedSpan(address, bytes.Length));
        return address;
    }

    /// <summary>A NUL-terminated UTF-8 string in guest memory.</summary>
    public ulong Str(string text) => Put(Encoding.UTF8.GetBytes(text + "\0"));

    public byte[] Bytes(ulong address, int length) => Memory.UncheckedSpan(address, length).ToArray();

    public T Read<T>(ulong address) where T : unmanaged => MemoryMarshal.Read<T>(Memory.UncheckedSpan(address, sizeof(T)));

    public void Dispose() => NativeMemory.Free(_backing);
}
