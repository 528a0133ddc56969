using P2PReplay.Guest;
using P2PReplay.Kvm;

namespace P2PReplay.Tests.Guest;

public sealed class CpuidBaselineTests
{
    private static KvmCpuidEntry2 Leaf(uint function, uint index, uint eax, uint ebx, uint ecx, uint edx) =>
        new() { Function = function, Index = index, Eax = eax, Ebx = ebx, Ecx = ecx, Edx = edx };

    [Fact]
    public void Nondeterministic_and_host_specific_features_are_hidden()
    {
        var host = new[]
        {
            Leaf(0x1, 0, 0x000906EA, 0x0B100800, 0xFFFFFFFF, 0xFFFFFFFF),
            Leaf(0x7, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
            Leaf(0xD, 0, 0xE7, 0x988, 0xA88, 0),
            Leaf(0x80000001, 0, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF),
        };
        var guest = CpuidBaseline.Normalize(host);
        Assert.Equal(0u, guest[0].Ecx & (1u << 30));         // RDRAND
        Assert.Equal(0x000906EAu, guest[0].Eax);              // the signature is kept
        Assert.Equal(0u, guest[0].Ebx >> 24);                 // APIC id
        Assert.Equal(0u, guest[1].Ebx & (1u << 18));         // RDSEED
        Assert.Equal(0u, guest[1].Ebx & ((1u << 4) | (1u << 11))); // HLE, RTM
        Assert.Equal(0u, guest[1].Ebx & (1u << 16));         // AVX-512F
        Assert.Equal(0u, guest[1].Ecx & (1u << 22));         // RDPID
        Assert.Equal((uint)CpuidBaseline.Xcr0, guest[2].Eax); // XCR0 x87|SSE|AVX only
        Assert.Equal(0u, guest[3].Edx & (1u << 27));         // RDTSCP
        Assert.Equal(1u << 5, guest[1].Ebx & (1u << 5));     // an ordinary feature (AVX2) survives
    }

    [Fact]
    public void Normalization_is_idempotent_and_does_not_touch_the_input()
    {
        var host = new[] { Leaf(0x1, 0, 1, 2, 0xFFFFFFFF, 4) };
        var once = CpuidBaseline.Normalize(host);
        var twice = CpuidBaseline.Normalize(once);
        Assert.Equal(once, twice);
        Assert.Equal(0xFFFFFFFFu, host[0].Ecx);
    }
}
