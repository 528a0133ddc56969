using System.Runtime.InteropServices;
using P2PReplay.Guest;
using P2PReplay.Interop;
using P2PReplay.Kvm;
using P2PReplay.Linux;
using P2PReplay.Linux.Memory;
using P2PReplay.Replay;

namespace P2PReplay.Vmm.Snapshots;

/// <summary>Takes a <see cref="VmSnapshot"/> of a VM's memory and vCPU, and puts them back into a new VM.</summary>
internal static unsafe class SnapshotRestore
{
    private const ulong PageSize = GuestLayout.PageSize;

    public static VmSnapshot Capture(KvmVcpu vcpu, SafeMappedMemory mapping, ulong physicalSize, LinuxProcess process, PageTables tables, VcpuRunner runner,
        ReplayResumePoint resume, bool trackGuestWrites)
    {
        ulong userEnd = process.Memory.UserEnd;
        var (nextTable, freeTables) = tables.AllocatorState;
        // Only where anything can be non-zero: the VMM's low area, the mapped user ranges, the used part of the table pool.
        // Unmapped user memory is always zero (munmap discards it).
        var ranges = new List<(ulong Start, ulong End)> { (0, AddressSpace.MinAddress) };
        ranges.AddRange(process.AddressSpace.MappedRanges);
        ranges.Add((userEnd, Math.Min(nextTable, physicalSize)));
        var runs = new List<MemoryRun>();
        byte* memory = mapping.Pointer;
        byte[] resident = [];
        foreach (var (start, end) in ranges)
        {
            // Pages the host never populated are zero; reading them would map the host's zero page under the guest,
            // which shadow paging (kvm_pvm) does not always replace when the guest then writes there.
            int pages = checked((int)((end - start) / PageSize));
            if (resident.Length < pages) resident = new byte[pages];
            if (!mapping.TryGetResidency(start, end - start, resident)) resident.AsSpan(0, pages).Fill(1);
            ulong runStart = 0;
            bool inRun = false;
            for (ulong page = start; page <= end; page += PageSize)
            {
                // SAFETY: page lies below physicalSize (every range ends inside guest-physical memory), which the mapping covers.
                bool nonZero = page < end && (resident[(page - start) / PageSize] & 1) != 0
                    && new ReadOnlySpan<byte>(memory + page, (int)PageSize).IndexOfAnyExcept((byte)0) >= 0;
                if (nonZero && !inRun)
                {
                    runStart = page;
                    inRun = true;
                }
                else if (!nonZero && inRun)
                {
                    // SAFETY: [runStart, page) is inside guest-physical memory (see above).
                    runs.Add(new MemoryRun(runStart, new ReadOnlySpan<byte>(memory + runStart, checked((int)(page - runStart))).ToArray()));
                    inRun = false;
                }
            }
        }

        return new VmSnapshot
        {
            Resume = resume,
            Exits = runner.Exits,
            SawUserModeSyscall = runner.SawUserModeSyscall,
            PhysicalSize = physicalSize,
            // The sync-regs page holds the registers as the guest resumes with them (pending changes included).
            Registers = MemoryMarshal.AsBytes(new ReadOnlySpan<KvmRegs>(in vcpu.SyncRegs)).ToArray(),
            SpecialRegisters = MemoryMarshal.AsBytes(new ReadOnlySpan<KvmSregs>(in vcpu.SyncSregs)).ToArray(),
            FloatingPoint = vcpu.GetFloatingPointState(),
            NextPageTable = nextTable,
            FreePageTables = freeTables,
            WrittenPages = trackGuestWrites ? process.Memory.PeekWrittenPages() : [],
            Personality = PersonalityCodec.Capture(process),
            Memory = runs,
        };
    }

    /// <summary>Fills a fresh VM's guest-physical memory (system structures already written) from a snapshot.</summary>
    public static void RestoreMemory(byte* memory, ulong userEnd, ulong physicalSize, PageTables tables, VmSnapshot snapshot)
    {
        // SAFETY: both ranges lie inside the guest-physical mapping of physicalSize bytes.
        new Span<byte>(memory, (int)AddressSpace.MinAddress).Clear();
        for (ulong at = userEnd; at < physicalSize; at += PageSize) new Span<byte>(memory + at, (int)PageSize).Clear();
        foreach (var run in snapshot.Memory)
        {
            if (run.Address + (ulong)run.Bytes.Length > physicalSize) throw new SnapshotFormatException($"memory run at 0x{run.Address:x} lies outside guest memory");
            // SAFETY: the run was bounds-checked against physicalSize just above.
            run.Bytes.CopyTo(new Span<byte>(memory + run.Address, run.Bytes.Length));
        }
        // Accessed and Dirty bits in the copied tables describe the old VM's history. Under shadow paging KVM maps a page
        // whose guest PTE is already dirty writable at its first read, which its dirty log then reports as written; with
        // the bits clear, only real writes are (as in a VM that ran from the start). SDM 3A §4.8: bits 5 (A) and 6 (D).
        ulong tablesEnd = Math.Min(snapshot.NextPageTable, physicalSize);
        for (ulong at = userEnd; at + 8 <= tablesEnd; at += 8)
        {
            // SAFETY: at lies inside the table pool, below physicalSize.
            ulong* entry = (ulong*)(memory + at);
            if ((*entry & PageTables.Present) != 0) *entry &= ~((1UL << 5) | (1UL << 6));
        }
        try
        {
            tables.RestoreAllocator(snapshot.NextPageTable, snapshot.FreePageTables);
        }
        catch (ArgumentException e)
        {
            throw new SnapshotFormatException($"the snapshot's page-table state does not fit this VM: {e.Message}", e);
        }
    }

    /// <summary>Puts the registers back, after the fixed set-up (CPUID, XCR0, SYSCALL MSRs) the VM was created with.</summary>
    public static void RestoreVcpu(KvmVcpu vcpu, VmSnapshot snapshot)
    {
        var regs = MemoryMarshal.Read<KvmRegs>(snapshot.Registers);
        var sregs = MemoryMarshal.Read<KvmSregs>(snapshot.SpecialRegisters);
        vcpu.SetSregs(sregs);
        vcpu.SetRegs(regs);
        vcpu.SetFloatingPointState(snapshot.FloatingPoint);
        // The personality reads registers from the sync-regs page, which KVM fills only at the first exit.
        vcpu.SyncRegs = regs;
        vcpu.SyncSregs = sregs;
        vcpu.DirtyRegs = 0;
    }
}
