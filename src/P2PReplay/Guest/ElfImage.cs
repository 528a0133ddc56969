using System.Buffers.Binary;
using System.Text;

namespace P2PReplay.Guest;

/// <summary>The program is not something this VM can load; the message says why in the user's terms.</summary>
internal sealed class ElfFormatException(string message) : Exception(message);

/// <summary>A PT_LOAD segment (ELF-64 Object File Format, Program Header Table).</summary>
internal readonly record struct LoadSegment(ulong Offset, ulong VirtualAddress, ulong FileSize, ulong MemorySize, bool Read, bool Write, bool Execute);

/// <summary>A parsed static x86-64 ELF executable. Parsing checks every offset and size against the file.</summary>
internal sealed class ElfImage
{
    private const ushort EtExec = 2, EtDyn = 3, EmX86_64 = 62;
    private const uint PtLoad = 1, PtInterp = 3, PtPhdr = 6;
    private const uint PfX = 1, PfW = 2, PfR = 4;
    private const int HeaderSize = 64, ProgramHeaderSize = 56, MaxProgramHeaders = 256;

    private ElfImage(bool positionIndependent, ulong entry, ulong programHeaderOffset, int programHeaderCount,
        ulong? programHeaderAddress, IReadOnlyList<LoadSegment> segments)
    {
        PositionIndependent = positionIndependent;
        Entry = entry;
        ProgramHeaderOffset = programHeaderOffset;
        ProgramHeaderCount = programHeaderCount;
        ProgramHeaderAddress = programHeaderAddress;
        Segments = segments;
    }

    /// <summary>ET_DYN without an interpreter (static-pie): loaded at a chosen base.</summary>
    public bool PositionIndependent { get; }

    public ulong Entry { get; }

    public ulong ProgramHeaderOffset { get; }

    public int ProgramHeaderCount { get; }

    /// <summary>Virtual address of the program headers (PT_PHDR, or found inside a PT_LOAD), before any load bias.</summary>
    public ulong? ProgramHeaderAddress { get; }

    public IReadOnlyList<LoadSegment> Segments { get; }

    public ulong LowestAddress => Segments.Min(s => s.VirtualAddress & ~0xFFFUL);

    public ulong HighestAddress => Segments.Max(s => s.VirtualAddress + s.MemorySize);

    public static ElfImage Parse(ReadOnlySpan<byte> file, string name = "program")
    {
        if (file.Length < 4 || file[0] != 0x7F || file[1] != (byte)'E' || file[2] != (byte)'L' || file[3] != (byte)'F')
            throw new ElfFormatException($"{name} is not an ELF executable (it does not start with \\x7fELF)");
        if (file.Length < 5 || file[4] != 2)
            throw new ElfFormatException($"{name} is a {(file.Length >= 5 && file[4] == 1 ? "32-bit" : "non-64-bit")} ELF; p2preplay runs 64-bit x86-64 programs only");
        if (file.Length < HeaderSize) throw new ElfFormatException($"{name} is a truncated ELF file ({file.Length} bytes, no complete header)");
        if (file[5] != 1) throw new ElfFormatException($"{name} is a big-endian ELF; p2preplay runs little-endian x86-64 programs only");
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(file[16..]);
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(file[18..]);
        if (machine != EmX86_64) throw new ElfFormatException($"{name} is an ELF for {MachineName(machine)}; p2preplay runs x86-64 programs only");
        if (type != EtExec && type != EtDyn)
            throw new ElfFormatException($"{name} is an ELF {(type == 1 ? "relocatable object (.o)" : type == 4 ? "core dump" : $"of type {type}")}, not an executable");
        ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(file[24..]);
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(file[32..]);
        ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(file[54..]);
        ushort phnum = BinaryPrimitives.ReadUInt16LittleEndian(file[56..]);
        if (phnum == 0 || phnum > MaxProgramHeaders) throw new ElfFormatException($"{name} has {phnum} program headers; a loadable ELF has between 1 and {MaxProgramHeaders}");
        if (phentsize != ProgramHeaderSize) throw new ElfFormatException($"{name} has program headers of {phentsize} bytes (expected {ProgramHeaderSize})");
        if (phoff > (ulong)file.Length || (ulong)file.Length - phoff < (ulong)phnum * ProgramHeaderSize)
            throw new ElfFormatException($"{name} is truncated: its program headers lie past the end of the file");

        var segments = new List<LoadSegment>();
        ulong? phdrAddress = null;
        string? interpreter = null;
        for (int i = 0; i < phnum; i++)
        {
            var ph = file.Slice((int)phoff + i * ProgramHeaderSize, ProgramHeaderSize);
            uint ptype = BinaryPrimitives.ReadUInt32LittleEndian(ph);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(ph[4..]);
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]);
            ulong vaddr = BinaryPrimitives.ReadUInt64LittleEndian(ph[16..]);
            ulong filesz = BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]);
            ulong memsz = BinaryPrimitives.ReadUInt64LittleEndian(ph[40..]);
            switch (ptype)
            {
                case PtInterp:
                    interpreter = offset < (ulong)file.Length && filesz <= (ulong)file.Length - offset
                        ? Encoding.UTF8.GetString(file.Slice((int)offset, (int)filesz)).TrimEnd('\0')
                        : "(unreadable)";
                    break;
                case PtPhdr:
                    phdrAddress = vaddr;
                    break;
                case PtLoad:
                    if (memsz == 0) break;
                    if (filesz > memsz) throw new ElfFormatException($"{name}: segment {i} has a file size larger than its memory size");
                    if (offset > (ulong)file.Length || filesz > (ulong)file.Length - offset)
                        throw new ElfFormatException($"{name} is truncated: segment {i} lies past the end of the file");
                    if (vaddr + memsz < vaddr || vaddr + memsz > 0x0000_8000_0000_0000UL)
                        throw new ElfFormatException($"{name}: segment {i} is outside the user address space");
                    if ((vaddr & 0xFFF) != (offset & 0xFFF))
                        throw new ElfFormatException($"{name}: segment {i} is not page-congruent (vaddr and offset differ modulo 4096)");
                    segments.Add(new LoadSegment(offset, vaddr, filesz, memsz, (flags & PfR) != 0, (flags & PfW) != 0, (flags & PfX) != 0));
                    break;
            }
        }
        if (interpreter is not null)
            throw new ElfFormatException($"{name} is dynamically linked (it asks for the interpreter {interpreter}); p2preplay runs statically linked programs only for now: build with -static");
        if (segments.Count == 0) throw new ElfFormatException($"{name} has no loadable segments");
        segments.Sort((a, b) => a.VirtualAddress.CompareTo(b.VirtualAddress));
        for (int i = 1; i < segments.Count; i++)
        {
            if (segments[i].VirtualAddress < segments[i - 1].VirtualAddress + segments[i - 1].MemorySize)
                throw new ElfFormatException($"{name} has overlapping loadable segments");
        }
        if (phdrAddress is null)
        {
            foreach (var s in segments)
            {
                if (phoff >= s.Offset && phoff + (ulong)phnum * ProgramHeaderSize <= s.Offset + s.FileSize)
                {
                    phdrAddress = s.VirtualAddress + (phoff - s.Offset);
                    break;
                }
            }
        }
        return new ElfImage(type == EtDyn, entry, phoff, phnum, phdrAddress, segments);
    }

    private static string MachineName(ushort machine) => machine switch
    {
        3 => "i386 (32-bit x86)",
        40 => "ARM (32-bit)",
        183 => "AArch64 (arm64)",
        243 => "RISC-V",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "s390",
        _ => $"machine type {machine}",
    };
}
