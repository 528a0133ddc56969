using P2PReplay.Linux.Memory;
using P2PReplay.Linux.Syscalls;
using P2PReplay.Tests.Fakes;

namespace P2PReplay.Tests.Linux;

/// <summary>
/// Every syscall in the table, memory management included (which the in-VM hostile guest must avoid to keep
/// running), fed random numbers, wild pointers and lengths: no exception escapes, every result is a value or a
/// valid -errno, and the address-space bookkeeping stays consistent.
/// </summary>
public sealed class SyscallFuzzTests
{
    // exit, exit_group and signals sent to oneself (kill, tkill, tgkill) may end the process; they have their own tests.
    private static readonly int[] Terminating = [60, 231, 62, 200, 234];

    [Theory]
    [InlineData(11)]
    [InlineData(22)]
    [InlineData(33)]
    public void Random_calls_never_escape_the_personality(int seed)
    {
        using var guest = new TestGuest();
        guest.Process.AddressSpace.Initialize(0x800000);
        var random = new Random(seed);
        ulong[] interesting =
        [
            0, 1, 0xFFFF_FFFF_FFFF_FFFF, 0x7FFF_FFFF, 0x8000_0000, 4096, 0x1000_0000_0000, 0xDEAD_BEEF_000,
            TestGuest.ScratchStart, TestGuest.ScratchStart + TestGuest.ScratchSize - 1, TestGuest.MemorySize - 8,
            guest.Process.AddressSpace.MmapTop - 0x10000, 0x800000,
        ];
        ulong Arg() => random.Next(4) switch
        {
            0 => interesting[random.Next(interesting.Length)],
            1 => (ulong)random.Next(-4, 300),
            2 => TestGuest.ScratchStart + (ulong)random.Next((int)TestGuest.ScratchSize),
            _ => (ulong)random.NextInt64() ^ ((ulong)random.Next() << 40),
        };
        int completed = 0;
        for (int i = 0; i < 30_000; i++, completed++)
        {
            int number = random.Next(10) == 0 ? random.Next(-5, 600) : random.Next(0, 460);
            if (Terminating.Contains(number)) continue;
            var args = new SyscallArgs(number, Arg(), Arg(), Arg(), Arg(), Arg(), Arg());
            long result = (uint)number < SyscallTable.Size
                ? SyscallTable.ByNumber[number].Handler(guest.Process, args)
                : new SyscallDispatcher().Dispatch(guest.Process, args);
            Assert.True(result >= -4095, $"{SyscallNames.Get(number)} returned {result}");
        }
        Assert.Equal(30_000, completed);
        AssertBookkeepingConsistent(guest);
    }

    private static void AssertBookkeepingConsistent(TestGuest guest)
    {
        var ranges = guest.Process.AddressSpace.MappedRanges;
        for (int i = 1; i < ranges.Count; i++) Assert.True(ranges[i - 1].End < ranges[i].Start, "mapped ranges overlap or touch");
        for (ulong page = 0; page < TestGuest.MemorySize; page += GuestMemory.PageSize)
        {
            if (guest.Memory.GetProtection(page) == Protection.None) continue;
            Assert.True(ranges.Any(r => r.Start <= page && page < r.End), $"page 0x{page:x} is accessible but not mapped");
        }
    }
}
