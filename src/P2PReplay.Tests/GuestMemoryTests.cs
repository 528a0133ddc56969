using System.Runtime.InteropServices;
using P2PReplay.Linux.Memory;

namespace P2PReplay.Tests;

public sealed unsafe class GuestMemoryTests : IDisposable
{
    private const ulong Size = 1 << 20;
    private readonly byte* _backing = (byte*)NativeMemory.AllocZeroed((nuint)Size);

    public void Dispose() => NativeMemory.Free(_backing);

    [Fact]
    public void Access_follows_page_protection_and_bounds()
    {
        var memory = new GuestMemory(_backing, Size);
        memory.SetProtection(0x10000, 0x2000, Protection.Read);
        memory.SetProtection(0x12000, 0x1000, Protection.Read | Protection.Write);

        Assert.True(memory.IsAccessible(0x10000, 0x3000, Protection.Read));
        Assert.False(memory.IsAccessible(0x10000, 0x3000, Protection.Write));
        Assert.True(memory.TryWrite(0x12ff8, 42UL));
        Assert.False(memory.TryWrite(0x12ffc, 42UL)); // crosses into an unmapped page
        Assert.False(memory.TryRead(Size - 4, out ulong _)); // past the end
        Assert.False(memory.TryRead(ulong.MaxValue - 3, out uint _)); // wraps around
        Assert.True(memory.TryRead(0x12ff8, out ulong value));
        Assert.Equal(42UL, value);
    }

    [Fact]
    public void CString_reads_stop_at_nul_fault_or_limit()
    {
        var memory = new GuestMemory(_backing, Size);
        memory.SetProtection(0x10000, 0x1000, Protection.Read | Protection.Write);
        memory.TryWrite(0x10ffc, "abc\0"u8);
        Assert.Equal(0, memory.TryReadCString(0x10ffc, 100, out string s));
        Assert.Equal("abc", s);
        memory.TryWrite(0x10ffc, "abcd"u8);
        Assert.Equal(-14, memory.TryReadCString(0x10ffc, 100, out string _)); // runs into an unmapped page
        Assert.Equal(-36, memory.TryReadCString(0x10ffc, 2, out string _)); // longer than allowed
    }
}
