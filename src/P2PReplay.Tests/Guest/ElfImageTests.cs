using System.Buffers.Binary;
using System.Text;
using P2PReplay.Guest;

namespace P2PReplay.Tests.Guest;

public sealed class ElfImageTests
{
    /// <summary>A minimal ELF64 x86-64 executable: header, program headers, and a code segment.</summary>
    internal static byte[] BuildElf(ushort type = 2, ushort machine = 62, byte elfClass = 2, string? interpreter = null, ulong vaddr = 0x400000)
    {
        int phnum = interpreter is null ? 2 : 3;
        var file = new byte[0x2000];
        file[0] = 0x7F; file[1] = (byte)'E'; file[2] = (byte)'L'; file[3] = (byte)'F';
        file[4] = elfClass; file[5] = 1; file[6] = 1;
        var s = file.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(s[16..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(s[18..], machine);
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], vaddr + 0x1000);   // entry
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], 64);               // phoff
        BinaryPrimitives.WriteUInt16LittleEndian(s[52..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(s[54..], 56);
        BinaryPrimitives.WriteUInt16LittleEndian(s[56..], (ushort)phnum);
        void Ph(int i, uint ptype, uint flags, ulong offset, ulong va, ulong filesz, ulong memsz)
        {
            var ph = file.AsSpan(64 + i * 56, 56);
            BinaryPrimitives.WriteUInt32LittleEndian(ph, ptype);
            BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], flags);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], offset);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], va);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], filesz);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], memsz);
        }
        Ph(0, 1, 4, 0, vaddr, 0x1000, 0x1000);                 // R: headers
        Ph(1, 1, 5, 0x1000, vaddr + 0x1000, 0x800, 0x3000);    // R+X, with bss
        if (interpreter is not null)
        {
            Encoding.ASCII.GetBytes(interpreter + "\0").CopyTo(file, 0x200);
            Ph(2, 3, 4, 0x200, vaddr + 0x200, (ulong)interpreter.Length + 1, (ulong)interpreter.Length + 1);
        }
        return file;
    }

    [Fact]
    public void Parses_a_static_executable()
    {
        var elf = ElfImage.Parse(BuildElf());
        Assert.False(elf.PositionIndependent);
        Assert.Equal(0x401000UL, elf.Entry);
        Assert.Equal(2, elf.Segments.Count);
        Assert.Equal(0x400040UL, elf.ProgramHeaderAddress); // found inside the first PT_LOAD
        Assert.Equal(0x404000UL, elf.HighestAddress);
        Assert.True(elf.Segments[1].Execute);
        Assert.False(elf.Segments[1].Write);
    }

    [Fact]
    public void Static_pie_is_position_independent() => Assert.True(ElfImage.Parse(BuildElf(type: 3, vaddr: 0)).PositionIndependent);

    [Theory]
    [InlineData("not an ELF executable")]
    public void Rejects_non_elf_files(string expected)
    {
        var e = Assert.Throws<ElfFormatException>(() => ElfImage.Parse("#!/bin/sh\necho hi\n"u8, "script.sh"));
        Assert.Contains(expected, e.Message);
        Assert.Contains("script.sh", e.Message);
    }

    [Fact]
    public void Rejects_32_bit_and_foreign_machines_by_name()
    {
        Assert.Contains("32-bit", Assert.Throws<ElfFormatException>(() => ElfImage.Parse(BuildElf(elfClass: 1))).Message);
        Assert.Contains("AArch64", Assert.Throws<ElfFormatException>(() => ElfImage.Parse(BuildElf(machine: 183))).Message);
        Assert.Contains("relocatable", Assert.Throws<ElfFormatException>(() => ElfImage.Parse(BuildElf(type: 1))).Message);
    }

    [Fact]
    public void Rejects_dynamic_programs_naming_their_interpreter()
    {
        var e = Assert.Throws<ElfFormatException>(() => ElfImage.Parse(BuildElf(interpreter: "/lib64/ld-linux-x86-64.so.2")));
        Assert.Contains("dynamically linked", e.Message);
        Assert.Contains("/lib64/ld-linux-x86-64.so.2", e.Message);
    }

    [Fact]
    public void Rejects_truncated_files()
    {
        var full = BuildElf();
        Assert.Throws<ElfFormatException>(() => ElfImage.Parse(full.AsSpan(0, 40)));
        Assert.Throws<ElfFormatException>(() => ElfImage.Parse(full.AsSpan(0, 100)));
        Assert.Throws<ElfFormatException>(() => ElfImage.Parse(full.AsSpan(0, 0x1100))); // segment data cut off
    }

    [Fact]
    public void Fuzzed_headers_only_ever_parse_or_raise_a_format_error()
    {
        var random = new Random(1234);
        var original = BuildElf();
        for (int iteration = 0; iteration < 20000; iteration++)
        {
            var mutated = (byte[])original.Clone();
            int flips = random.Next(1, 8);
            for (int f = 0; f < flips; f++) mutated[random.Next(0, 64 + 3 * 56)] = (byte)random.Next(256);
            int length = random.Next(10) == 0 ? random.Next(mutated.Length) : mutated.Length;
            try
            {
                var elf = ElfImage.Parse(mutated.AsSpan(0, length));
                foreach (var segment in elf.Segments) Assert.True(segment.Offset + segment.FileSize <= (ulong)length);
            }
            catch (ElfFormatException)
            {
            }
        }
    }
}
