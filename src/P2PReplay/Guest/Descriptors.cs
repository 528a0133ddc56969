namespace P2PReplay.Guest;

/// <summary>Segment, system and gate descriptor encodings (SDM 3A §3.4.5, §7.2.3, §6.14.1).</summary>
internal static class Descriptors
{
    // Access byte: P (bit 7), DPL (bits 6:5), S (bit 4), Type (bits 3:0). Flags nibble: G (bit 3), D/B (bit 2), L (bit 1).
    public const byte AccessKernelCode = 0x9A, AccessKernelData = 0x92, AccessUserCode = 0xFA, AccessUserData = 0xF2;
    public const byte AccessTss64Available = 0x89;
    public const byte FlagsCode64 = 0xA, FlagsData = 0xC, FlagsCode32 = 0xC;

    public const ushort KernelCodeSelector = 0x08;
    public const ushort KernelDataSelector = 0x10;
    public const ushort UserCode32Selector = 0x20 | 3;
    public const ushort UserDataSelector = 0x28 | 3;
    public const ushort UserCodeSelector = 0x30 | 3;
    public const ushort TssSelector = 0x40;

    /// <summary>IA32_STAR: SYSCALL loads CS from [47:32] (SS = +8); SYSRET loads SS = [63:48]+8, CS = [63:48]+16 (SDM 3B §5.8.8).</summary>
    public const ulong StarValue = (0x20UL << 48) | ((ulong)KernelCodeSelector << 32);

    /// <summary>An 8-byte code or data segment descriptor (SDM 3A Figure 3-8).</summary>
    public static ulong Segment(uint baseAddress, uint limit, byte access, byte flags) =>
        (limit & 0xFFFFUL)
        | ((baseAddress & 0xFFFFFFUL) << 16)
        | ((ulong)access << 40)
        | (((limit >> 16) & 0xFUL) << 48)
        | ((ulong)(flags & 0xF) << 52)
        | (((ulong)baseAddress >> 24) << 56);

    /// <summary>A 16-byte 64-bit TSS descriptor (SDM 3A Figure 7-4): low and high quadwords.</summary>
    public static (ulong Low, ulong High) Tss(ulong baseAddress, uint limit) =>
        (Segment((uint)(baseAddress & 0xFFFFFFFF), limit, AccessTss64Available, 0), baseAddress >> 32);

    /// <summary>A 16-byte 64-bit interrupt gate (SDM 3A Figure 6-8): P=1, type 0xE, the given DPL.</summary>
    public static (ulong Low, ulong High) InterruptGate(ulong handler, ushort selector, int dpl) =>
        ((handler & 0xFFFF)
         | ((ulong)selector << 16)
         | ((ulong)(0x80 | (dpl << 5) | 0xE) << 40)
         | (((handler >> 16) & 0xFFFF) << 48),
         handler >> 32);

    /// <summary>The GDT the VMM installs, Linux's selector layout: kernel code/data, user 32/data/64 code, TSS.</summary>
    public static ulong[] BuildGdt(ulong tssAddress, uint tssLimit)
    {
        var gdt = new ulong[10];
        gdt[1] = Segment(0, 0xFFFFF, AccessKernelCode, FlagsCode64);
        gdt[2] = Segment(0, 0xFFFFF, AccessKernelData, FlagsData);
        gdt[4] = Segment(0, 0xFFFFF, AccessUserCode, FlagsCode32);
        gdt[5] = Segment(0, 0xFFFFF, AccessUserData, FlagsData);
        gdt[6] = Segment(0, 0xFFFFF, AccessUserCode, FlagsCode64);
        (gdt[8], gdt[9]) = Tss(tssAddress, tssLimit);
        return gdt;
    }
}
