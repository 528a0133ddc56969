using System.Text;
using P2PReplay.Kvm;

namespace P2PReplay.Vmm;

/// <summary>What the host is: CPU vendor and signature, and which KVM module runs the guest.</summary>
internal sealed record HostCpu(string Vendor, uint Signature, string KvmModule)
{
    /// <summary>kvm_pvm (shadow paging, nested) cannot trap rdtsc, cpuid or rdrand (KVM-NOTES.md).</summary>
    public bool CanTrapTimeStampCounter => KvmModule != "kvm_pvm";

    /// <summary>"GenuineIntel 0x000906EA kvm_intel": equal strings mean replays see the same CPU.</summary>
    public override string ToString() => $"{Vendor} 0x{Signature:X8} {KvmModule}";

    public static HostCpu Describe(ReadOnlySpan<KvmCpuidEntry2> supported)
    {
        string vendor = "unknown";
        uint signature = 0;
        Span<byte> name = stackalloc byte[12];
        foreach (var leaf in supported)
        {
            if (leaf.Function == 0)
            {
                // CPUID.00H: the vendor string is EBX, EDX, ECX (SDM 2A CPUID).
                BitConverter.TryWriteBytes(name, leaf.Ebx);
                BitConverter.TryWriteBytes(name[4..], leaf.Edx);
                BitConverter.TryWriteBytes(name[8..], leaf.Ecx);
                vendor = Encoding.ASCII.GetString(name);
            }
            else if (leaf.Function == 1)
            {
                signature = leaf.Eax; // CPUID.01H:EAX: stepping, model, family
            }
        }
        string module = new[] { "kvm_pvm", "kvm_intel", "kvm_amd" }.FirstOrDefault(m => Directory.Exists($"/sys/module/{m}")) ?? "kvm";
        return new HostCpu(vendor, signature, module);
    }
}
