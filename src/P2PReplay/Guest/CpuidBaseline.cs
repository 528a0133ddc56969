using P2PReplay.Kvm;

namespace P2PReplay.Guest;

/// <summary>
/// Normalizes the host's supported CPUID into the guest's baseline: features whose results differ between runs or
/// hosts are hidden (SDM Vol. 2A, CPUID; leaf/bit numbers cited per line), so that libc picks the same code paths.
/// </summary>
internal static class CpuidBaseline
{
    /// <summary>XCR0 the guest gets: x87, SSE, AVX (SDM 1 §13.3). AVX-512 state is hidden.</summary>
    public const ulong Xcr0 = X86.Xcr0X87 | X86.Xcr0Sse | X86.Xcr0Avx;

    public static KvmCpuidEntry2[] Normalize(ReadOnlySpan<KvmCpuidEntry2> host)
    {
        var result = host.ToArray();
        for (int i = 0; i < result.Length; i++)
        {
            ref var e = ref result[i];
            switch (e.Function)
            {
                case 0x1:
                    e.Ecx &= ~(1u << 30);           // CPUID.01H:ECX[30] RDRAND: nondeterministic values
                    e.Ebx &= 0x0000FFFF;            // CPUID.01H:EBX[31:24] initial APIC ID, [23:16] logical count: host topology
                    e.Ebx |= 1u << 16;
                    break;
                case 0x7 when e.Index == 0:
                    e.Ebx &= ~(1u << 18);           // CPUID.07H:EBX[18] RDSEED
                    e.Ebx &= ~(1u << 4);            // CPUID.07H:EBX[4] HLE (TSX): aborts are timing-dependent
                    e.Ebx &= ~(1u << 11);           // CPUID.07H:EBX[11] RTM (TSX)
                    e.Ebx &= ~0xFC230000u;          // CPUID.07H:EBX[16,17,21,26..31] AVX-512 F/DQ/IFMA/PF/ER/CD/BW/VL
                    e.Ecx &= ~(1u << 22);           // CPUID.07H:ECX[22] RDPID: returns the host CPU number
                    e.Ecx &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14)); // AVX-512 VBMI/VBMI2/VNNI/BITALG/VPOPCNTDQ
                    e.Edx &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23)); // AVX-512 4VNNIW/4FMAPS/VP2INTERSECT/FP16
                    e.Edx &= ~(1u << 11);           // CPUID.07H:EDX[11] RTM_ALWAYS_ABORT
                    break;
                case 0xD when e.Index == 0:
                    e.Eax &= (uint)Xcr0;            // CPUID.0DH.0:EAX: XCR0 bits the OS may enable
                    e.Edx = 0;
                    e.Ebx = 0x340;                  // legacy area + header + AVX state (576 + 256 bytes... rounded by SDM Table 13-1)
                    e.Ecx = 0x340;
                    break;
                case 0xD when e.Index == 1:
                    e.Eax &= ~(1u << 3);            // CPUID.0DH.1:EAX[3] XSAVES: supervisor state is not offered
                    break;
                case 0x80000001:
                    e.Edx &= ~(1u << 27);           // CPUID.80000001H:EDX[27] RDTSCP: TSC_AUX leaks the host CPU number
                    break;
            }
        }
        return result;
    }
}
