using System.Runtime.InteropServices;

namespace P2PReplay.Kvm;

/// <summary>struct kvm_regs (linux/kvm.h, x86): 18 quadwords.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmRegs
{
    public ulong Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rsp, Rbp;
    public ulong R8, R9, R10, R11, R12, R13, R14, R15;
    public ulong Rip, Rflags;
}

/// <summary>struct kvm_segment: the hidden part of a segment register.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmSegment
{
    public ulong Base;
    public uint Limit;
    public ushort Selector;
    public byte Type, Present, Dpl, Db, S, L, G, Avl, Unusable, Padding;
}

/// <summary>struct kvm_dtable (GDTR/IDTR).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmDtable
{
    public ulong Base;
    public ushort Limit;
    private ushort _pad0, _pad1, _pad2;
}

/// <summary>struct kvm_sregs (312 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmSregs
{
    public KvmSegment Cs, Ds, Es, Fs, Gs, Ss, Tr, Ldt;
    public KvmDtable Gdt, Idt;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8, Efer, ApicBase;
    public fixed ulong InterruptBitmap[4];
}

/// <summary>Offsets into the shared kvm_run page (x86-64 layout of struct kvm_run).</summary>
internal static class KvmRunLayout
{
    public const int ImmediateExit = 1;
    public const int ExitReason = 8;
    public const int ExitUnion = 32;          // io / mmio / fail_entry / internal
    public const int IoDirection = ExitUnion + 0;
    public const int IoSize = ExitUnion + 1;
    public const int IoPort = ExitUnion + 2;
    public const int IoCount = ExitUnion + 4;
    public const int IoDataOffset = ExitUnion + 8;
    public const int InternalSuberror = ExitUnion + 0;
    public const int FailEntryReason = ExitUnion + 0;
    public const int ValidRegs = 288;
    public const int DirtyRegs = 296;
    public const int SyncRegs = 304;
    public const int SyncSregs = SyncRegs + 144;

    public const ulong SyncX86Regs = 1;
    public const ulong SyncX86Sregs = 2;
}

/// <summary>struct kvm_userspace_memory_region.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmUserspaceMemoryRegion
{
    public uint Slot;
    public uint Flags;
    public ulong GuestPhysAddr;
    public ulong MemorySize;
    public ulong UserspaceAddr;
}

/// <summary>struct kvm_cpuid_entry2 (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmCpuidEntry2
{
    public uint Function, Index, Flags, Eax, Ebx, Ecx, Edx;
    private uint _pad0, _pad1, _pad2;
}

/// <summary>struct kvm_msr_entry.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmMsrEntry
{
    public uint Index;
    public uint Reserved;
    public ulong Data;
}
