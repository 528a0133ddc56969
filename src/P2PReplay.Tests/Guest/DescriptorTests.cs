using P2PReplay.Guest;

namespace P2PReplay.Tests.Guest;

public sealed class DescriptorTests
{
    [Fact]
    public void Flat_segments_encode_to_the_well_known_values()
    {
        // The classic flat descriptors every x86-64 kernel uses (SDM 3A Figure 3-8).
        Assert.Equal(0x00AF9A000000FFFFUL, Descriptors.Segment(0, 0xFFFFF, Descriptors.AccessKernelCode, Descriptors.FlagsCode64));
        Assert.Equal(0x00CF92000000FFFFUL, Descriptors.Segment(0, 0xFFFFF, Descriptors.AccessKernelData, Descriptors.FlagsData));
        Assert.Equal(0x00AFFA000000FFFFUL, Descriptors.Segment(0, 0xFFFFF, Descriptors.AccessUserCode, Descriptors.FlagsCode64));
        Assert.Equal(0x00CFF2000000FFFFUL, Descriptors.Segment(0, 0xFFFFF, Descriptors.AccessUserData, Descriptors.FlagsData));
    }

    [Fact]
    public void Segment_splits_base_and_limit_across_the_descriptor()
    {
        ulong d = Descriptors.Segment(0x12345678, 0xABCDE, 0x89, 0);
        Assert.Equal(0xBCDEUL, d & 0xFFFF);                 // limit 15:0
        Assert.Equal(0x345678UL, (d >> 16) & 0xFFFFFF);     // base 23:0
        Assert.Equal(0x89UL, (d >> 40) & 0xFF);             // access
        Assert.Equal(0xAUL, (d >> 48) & 0xF);               // limit 19:16
        Assert.Equal(0x12UL, d >> 56);                      // base 31:24
    }

    [Fact]
    public void Gdt_selectors_match_what_sysret_loads()
    {
        var gdt = Descriptors.BuildGdt(0x3000, 0x68 + 8192);
        // SYSRET: CS = STAR[63:48] + 16, SS = STAR[63:48] + 8, both with RPL 3 (SDM 2B SYSRET).
        ulong sysretBase = Descriptors.StarValue >> 48;
        Assert.Equal(Descriptors.UserCodeSelector, (ushort)((sysretBase + 16) | 3));
        Assert.Equal(Descriptors.UserDataSelector, (ushort)((sysretBase + 8) | 3));
        Assert.Equal(Descriptors.KernelCodeSelector, (ushort)((Descriptors.StarValue >> 32) & 0xFFFF));
        Assert.Equal(gdt[Descriptors.UserCodeSelector >> 3], Descriptors.Segment(0, 0xFFFFF, Descriptors.AccessUserCode, Descriptors.FlagsCode64));
        Assert.Equal(gdt[Descriptors.UserDataSelector >> 3], Descriptors.Segment(0, 0xFFFFF, Descriptors.AccessUserData, Descriptors.FlagsData));
        // The TSS descriptor is 16 bytes: type 9 (available 64-bit TSS), present, base split across both halves.
        Assert.Equal(0x89UL, (gdt[Descriptors.TssSelector >> 3] >> 40) & 0xFF);
        Assert.Equal(0UL, gdt[(Descriptors.TssSelector >> 3) + 1]);
    }

    [Fact]
    public void Interrupt_gate_carries_the_handler_selector_and_dpl()
    {
        var (low, high) = Descriptors.InterruptGate(0x1122_3344_5566_7788, 0x08, 3);
        Assert.Equal(0x7788UL, low & 0xFFFF);
        Assert.Equal(0x08UL, (low >> 16) & 0xFFFF);
        Assert.Equal(0xEEUL, (low >> 40) & 0xFF); // P=1, DPL=3, type 0xE
        Assert.Equal(0x5566UL, low >> 48);
        Assert.Equal(0x1122_3344UL, high);
    }

    [Fact]
    public void Exception_stub_addresses_map_back_to_their_vector()
    {
        var stubs = Stubs.ExceptionStubs();
        for (int vector = 0; vector < 256; vector++)
        {
            ulong address = GuestLayout.ExceptionStubsAddress + (ulong)(vector * GuestLayout.ExceptionStubStride);
            Assert.Equal(0xE6, stubs[vector * GuestLayout.ExceptionStubStride]);
            Assert.Equal(vector, Stubs.VectorAt(address));
            Assert.Equal(vector, Stubs.VectorAt(address + 2)); // where RIP points after the OUT
        }
        Assert.Equal(-1, Stubs.VectorAt(GuestLayout.ExceptionStubsAddress - 1));
        Assert.Equal(-1, Stubs.VectorAt(GuestLayout.ExceptionStubsAddress + 4096));
    }
}
