using System.IO.Hashing;
using P2PReplay.Linux;
using P2PReplay.Linux.Memory;

namespace P2PReplay.Replay;

/// <summary>The hash of one aligned block of guest memory (a 64 KiB block, or a 4 KiB page in written-pages mode).</summary>
public readonly record struct MemoryBlock(ulong Address, ulong Hash);

/// <summary>Which guest memory a digest covers.</summary>
public static class DigestMemory
{
    /// <summary>Every mapped 64 KiB block: costs time proportional to the guest's memory, needs no dirty tracking.</summary>
    public const string Mapped = "mapped";

    /// <summary>The 4 KiB pages written since the previous digest (KVM dirty log plus the VMM's own writes).</summary>
    public const string Written = "written";
}

/// <summary>
/// The VM's state at one exit: the user registers (as the guest resumes with them, on any hypervisor), the
/// personality (memory map, open files, writable layer, signals), the output so far, and every mapped block of guest
/// memory. Replay recomputes it at the same exit; the first difference names what diverged.
/// </summary>
public sealed record StateDigest(long Exit, int Syscall, ulong[] Registers, ulong Personality, ulong Output, ulong Granularity, MemoryBlock[] Memory)
{
    public const ulong BlockSize = 64 * 1024;
    public const ulong PageSize = 4096;

    public static readonly string[] RegisterNames =
    [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "rip", "rflags", "fs.base", "gs.base",
    ];

    public static StateDigest Capture(long exit, LinuxProcess process, ulong outputHash, string memory = DigestMemory.Mapped)
    {
        var r = process.Cpu.ResumeRegisters;
        ulong[] registers =
        [
            r.Rax, r.Rbx, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.Rsp, r.Rbp, r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15,
            r.Rip, r.Rflags, process.Cpu.FsBase, process.Cpu.GsBase,
        ];
        bool written = memory == DigestMemory.Written;
        return new StateDigest(exit, process.LastSyscall, registers, PersonalityDigest.Compute(process), outputHash, written ? PageSize : BlockSize,
            written ? HashWrittenPages(process) : HashMemory(process));
    }

    private static MemoryBlock[] HashWrittenPages(LinuxProcess process)
    {
        ulong[] bitmap = process.Memory.TakeWrittenPages();
        var pages = new List<MemoryBlock>();
        for (int word = 0; word < bitmap.Length; word++)
        {
            for (ulong bits = bitmap[word]; bits != 0; bits &= bits - 1)
            {
                ulong page = ((ulong)word * 64 + (ulong)System.Numerics.BitOperations.TrailingZeroCount(bits)) * PageSize;
                // Pages unmapped since they were written read as zeros and are not part of the guest's state any more.
                if (process.Memory.GetProtection(page) == Linux.Memory.Protection.None && !process.AddressSpace.IsMapped(page, PageSize)) continue;
                pages.Add(new MemoryBlock(page, XxHash3.HashToUInt64(process.Memory.UncheckedReadOnlySpan(page, (int)PageSize), (long)page)));
            }
        }
        return [.. pages];
    }

    private static MemoryBlock[] HashMemory(LinuxProcess process)
    {
        var blocks = new List<MemoryBlock>();
        var buffer = new byte[BlockSize];
        foreach (var (start, end) in process.AddressSpace.MappedRanges)
        {
            for (ulong block = start & ~(BlockSize - 1); block < end; block += BlockSize)
            {
                ulong from = Math.Max(block, start), to = Math.Min(block + BlockSize, end);
                var bytes = buffer.AsSpan(0, (int)(to - from));
                process.Memory.CopyForDigest(from, bytes);
                blocks.Add(new MemoryBlock(block, XxHash3.HashToUInt64(bytes, (long)from)));
            }
        }
        return [.. blocks];
    }

    public void Encode(ByteWriter w)
    {
        w.VarU((ulong)Exit);
        w.VarI(Syscall);
        w.VarU((ulong)Registers.Length);
        foreach (ulong value in Registers) w.U64(value);
        w.U64(Personality);
        w.U64(Output);
        w.VarU(Granularity);
        w.VarU((ulong)Memory.Length);
        ulong previous = 0;
        foreach (var block in Memory)
        {
            w.VarU((block.Address - previous) / Granularity); // ascending addresses: small deltas
            w.U64(block.Hash);
            previous = block.Address;
        }
    }

    public static StateDigest Decode(ReadOnlySpan<byte> payload)
    {
        var r = new ByteReader(payload);
        long exit = (long)r.VarU();
        long syscall = r.VarI();
        if (syscall < -1 || syscall > int.MaxValue) throw new FormatException("digest syscall out of range");
        int count = r.Int32(RegisterNames.Length);
        var registers = new ulong[count];
        for (int i = 0; i < count; i++) registers[i] = r.U64();
        ulong personality = r.U64();
        ulong output = r.U64();
        ulong granularity = r.VarU();
        if (granularity is not (PageSize or BlockSize)) throw new FormatException($"digest granularity {granularity} is not 4 KiB or 64 KiB");
        int blocks = r.Int32(1 << 24);
        var memory = new MemoryBlock[blocks];
        ulong address = 0;
        for (int i = 0; i < blocks; i++)
        {
            ulong delta = r.VarU();
            if (delta > (1UL << 47) / granularity) throw new FormatException("memory block address out of range");
            address += delta * granularity;
            memory[i] = new MemoryBlock(address, r.U64());
        }
        if (!r.AtEnd) throw new FormatException("trailing bytes after a digest");
        return new StateDigest(exit, (int)syscall, registers, personality, output, granularity, memory);
    }

    /// <summary>The first difference from another digest of the same exit, in words; null when equal.</summary>
    public string? FirstDifference(StateDigest replayed)
    {
        for (int i = 0; i < Math.Max(Registers.Length, replayed.Registers.Length); i++)
        {
            ulong a = i < Registers.Length ? Registers[i] : 0, b = i < replayed.Registers.Length ? replayed.Registers[i] : 0;
            if (a != b) return $"register {RegisterNames[i]}{ArgumentRole(i)}: recorded 0x{a:x}, replayed 0x{b:x}";
        }
        string what = Granularity == PageSize ? "written" : "mapped";
        for (int i = 0; i < Math.Max(Memory.Length, replayed.Memory.Length); i++)
        {
            if (i >= Memory.Length) return $"memory at 0x{replayed.Memory[i].Address:x} is {what} in the replay but not in the recording";
            if (i >= replayed.Memory.Length) return $"memory at 0x{Memory[i].Address:x} is {what} in the recording but not in the replay";
            if (Memory[i].Address != replayed.Memory[i].Address)
                return $"the {what} memory differs near 0x{Math.Min(Memory[i].Address, replayed.Memory[i].Address):x}";
            if (Memory[i].Hash != replayed.Memory[i].Hash)
                return Granularity == PageSize
                    ? $"memory page 0x{Memory[i].Address:x} differs"
                    : $"memory page(s) in 0x{Memory[i].Address:x}-0x{Memory[i].Address + BlockSize - 1:x} differ";
        }
        if (Output != replayed.Output) return "the program's output so far differs";
        if (Personality != replayed.Personality) return "the kernel-side state differs (memory map, open files, writable layer or signals)";
        return null;
    }

    /// <summary>After a syscall exit, argument registers still hold its arguments (rax its result): say so.</summary>
    private string ArgumentRole(int register)
    {
        if (Syscall < 0) return "";
        string name = Linux.Syscalls.SyscallNames.Get(Syscall);
        int argument = register switch { 5 => 1, 4 => 2, 3 => 3, 10 => 4, 8 => 5, 9 => 6, _ => 0 }; // rdi rsi rdx r10 r8 r9
        if (argument > 0) return $" (argument {argument} of {name})";
        return register == 0 ? $" (result of {name})" : "";
    }

    /// <summary>One hash of the whole digest, for summaries.</summary>
    public ulong Combined()
    {
        var w = new ByteWriter();
        Encode(w);
        return XxHash64.HashToUInt64(w.Written);
    }
}
