namespace P2PReplay.Guest;

/// <summary>Architectural bits used to set up the vCPU (Intel SDM Vol. 3A §2.5, §4, AMD APM Vol. 2).</summary>
internal static class X86
{
    // CR0 (SDM 3A §2.5)
    public const ulong Cr0Pe = 1UL << 0, Cr0Mp = 1UL << 1, Cr0Et = 1UL << 4, Cr0Ne = 1UL << 5, Cr0Wp = 1UL << 16,
        Cr0Am = 1UL << 18, Cr0Pg = 1UL << 31;

    // CR4 (SDM 3A §2.5): TSD makes RDTSC/RDTSCP privileged (#GP at CPL3) so the VMM can supply virtual time.
    public const ulong Cr4Tsd = 1UL << 2, Cr4Pae = 1UL << 5, Cr4Osfxsr = 1UL << 9, Cr4Osxmmexcpt = 1UL << 10,
        Cr4Osxsave = 1UL << 18;

    // IA32_EFER (MSR C000_0080H): SCE bit 0, LME bit 8, LMA bit 10, NXE bit 11.
    public const ulong EferSce = 1UL << 0, EferLme = 1UL << 8, EferLma = 1UL << 10, EferNxe = 1UL << 11;

    // SYSCALL MSRs (SDM 3B §5.8.8)
    public const uint MsrStar = 0xC000_0081, MsrLstar = 0xC000_0082, MsrCstar = 0xC000_0083, MsrSfmask = 0xC000_0084;

    // RFLAGS: bit 1 is reserved and always 1; IF bit 9; TF bit 8; DF bit 10; AC bit 18.
    public const ulong RflagsReserved = 1UL << 1, RflagsTf = 1UL << 8, RflagsIf = 1UL << 9, RflagsDf = 1UL << 10, RflagsAc = 1UL << 18;

    /// <summary>RFLAGS as SYSRET loads it from R11 (SDM 2B SYSRET): RF (16) and VM (17) cleared, reserved bit 1 set.</summary>
    public static ulong SysretFlags(ulong r11) => (r11 & 0x3C7FD7UL) | RflagsReserved;

    // XCR0 (SDM 1 §13.3): x87 bit 0, SSE bit 1, AVX bit 2.
    public const ulong Xcr0X87 = 1, Xcr0Sse = 2, Xcr0Avx = 4;

    // Exception vectors (SDM 3A Table 6-1).
    public const int VectorDivide = 0, VectorDebug = 1, VectorBreakpoint = 3, VectorOverflow = 4, VectorBound = 5,
        VectorInvalidOpcode = 6, VectorDeviceNotAvailable = 7, VectorDoubleFault = 8, VectorInvalidTss = 10,
        VectorSegmentNotPresent = 11, VectorStackFault = 12, VectorGeneralProtection = 13, VectorPageFault = 14,
        VectorFpu = 16, VectorAlignment = 17, VectorMachineCheck = 18, VectorSimd = 19;

    /// <summary>Vectors that push an error code (SDM 3A Table 6-1: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX).</summary>
    public static bool HasErrorCode(int vector) => vector is 8 or 10 or 11 or 12 or 13 or 14 or 17 or 21 or 29 or 30;
}
