namespace P2PReplay.Guest;

/// <summary>The few bytes of CPL0 code the guest has: they only turn a syscall or exception into a VM exit.</summary>
internal static class Stubs
{
    /// <summary>
    /// LSTAR target: OUT imm8, AL (E6 ib) then SYSRETQ (REX.W 0F 07). On VMX/SVM the OUT runs at CPL0 and the VMM
    /// lets SYSRETQ return; on kvm_pvm SYSCALL stays at CPL3 and the VMM returns to RCX itself.
    /// </summary>
    public static byte[] SyscallStub() => [0xE6, (byte)GuestLayout.SyscallPort, 0x48, 0x0F, 0x07];

    /// <summary>One 16-byte stub per vector: OUT imm8, AL then HLT forever; the stub's address tells the vector.</summary>
    public static byte[] ExceptionStubs()
    {
        var code = new byte[256 * GuestLayout.ExceptionStubStride];
        for (int vector = 0; vector < 256; vector++)
        {
            int o = vector * GuestLayout.ExceptionStubStride;
            code[o] = 0xE6;
            code[o + 1] = (byte)GuestLayout.ExceptionPort;
            code[o + 2] = 0xF4;            // HLT
            code[o + 3] = 0xEB;            // JMP -3 (back to HLT)
            code[o + 4] = 0xFD;
            for (int i = 5; i < GuestLayout.ExceptionStubStride; i++) code[o + i] = 0xF4;
        }
        return code;
    }

    /// <summary>The vector whose stub contains this address, or -1.</summary>
    public static int VectorAt(ulong rip)
    {
        if (rip < GuestLayout.ExceptionStubsAddress || rip >= GuestLayout.ExceptionStubsAddress + 256 * (ulong)GuestLayout.ExceptionStubStride) return -1;
        return (int)((rip - GuestLayout.ExceptionStubsAddress) / (ulong)GuestLayout.ExceptionStubStride);
    }
}
