using System.Buffers.Binary;
using P2PReplay.Guest;
using P2PReplay.Interop;
using P2PReplay.Kvm;
using P2PReplay.Linux;
using P2PReplay.Linux.FileSystem;
using P2PReplay.Linux.Loading;
using P2PReplay.Linux.Memory;
using P2PReplay.Linux.Syscalls;

namespace P2PReplay.Vmm;

/// <summary>
/// A KVM microVM with one vCPU running one static Linux program at CPL3 in long mode; the VMM is its kernel.
/// Guest-virtual addresses are identity-mapped onto guest-physical memory, which is one host mapping.
/// </summary>
internal sealed unsafe class MicroVm : IDisposable
{
    /// <summary>Where a position-independent static program (static-pie) is loaded.</summary>
    public const ulong PieLoadBias = 0x400000;

    private readonly KvmSystem _kvm;
    private readonly KvmVm _vm;
    private readonly SafeMappedMemory _memory;
    private readonly KvmVcpu _vcpu;
    private readonly PageTables _tables;
    private readonly ulong _physicalSize;
    private readonly bool _trackGuestWrites;

    private MicroVm(KvmSystem kvm, KvmVm vm, SafeMappedMemory memory, KvmVcpu vcpu, LinuxProcess process, SyscallDispatcher dispatcher,
        KvmCpuidEntry2[] cpuid, HostCpu hostCpu, PageTables tables, ulong physicalSize, bool trackGuestWrites, int? pinnedHostCpu)
    {
        _tables = tables;
        _physicalSize = physicalSize;
        _trackGuestWrites = trackGuestWrites;
        Cpuid = cpuid;
        HostCpu = hostCpu;
        _kvm = kvm;
        _vm = vm;
        _memory = memory;
        _vcpu = vcpu;
        Process = process;
        Dispatcher = dispatcher;
        Runner = new VcpuRunner(vcpu, process, dispatcher) { HostCpu = pinnedHostCpu };
    }

    public LinuxProcess Process { get; }

    public SyscallDispatcher Dispatcher { get; }

    public VcpuRunner Runner { get; }

    /// <summary>The CPUID baseline the guest sees.</summary>
    public KvmCpuidEntry2[] Cpuid { get; }

    public HostCpu HostCpu { get; }

    /// <summary>True when the host runs CPL3 syscalls without a privilege change (kvm_pvm): rdtsc/cpuid cannot be trapped there.</summary>
    public bool IsShadowHypervisor => Runner.SawUserModeSyscall;

    /// <summary>This host's CPUID baseline and description, before any VM exists (a recording's header needs them).</summary>
    public static (KvmCpuidEntry2[] Baseline, HostCpu Host) ProbeHost()
    {
        using var kvm = KvmSystem.Open();
        var supported = kvm.GetSupportedCpuid();
        return (CpuidBaseline.Normalize(supported), HostCpu.Describe(supported));
    }

    public static MicroVm Create(VmConfiguration config, IHostEnvironment host, TextWriter? trace) => Build(config, host, trace, null);

    /// <summary>
    /// A VM in the state a snapshot captured (see <see cref="Snapshots.VmSnapshot"/>), built from the same configuration
    /// (program, image, memory size, CPUID) as the VM that took it. Nothing is loaded or run: the vCPU resumes exactly
    /// where the snapshot's VM stood, and the caller attaches a <see cref="Replay.Replayer"/> made from the snapshot's
    /// resume point and the log tail (see <see cref="Snapshots.ReplaySnapshots.StartReplica"/>).
    /// </summary>
    public static MicroVm Restore(VmConfiguration config, Snapshots.VmSnapshot snapshot, IHostEnvironment host, TextWriter? trace) =>
        Build(config, host, trace, snapshot ?? throw new ArgumentNullException(nameof(snapshot)));

    private static MicroVm Build(VmConfiguration config, IHostEnvironment host, TextWriter? trace, Snapshots.VmSnapshot? snapshot)
    {
        ulong userEnd = (config.MemorySize + (2UL << 20) - 1) & ~((2UL << 20) - 1);
        if (userEnd < VmConfiguration.MinimumMemorySize || userEnd > GuestLayout.MaxMemory)
            throw new VmConfigurationException($"guest memory must be between {VmConfiguration.MinimumMemorySize >> 20} MiB and {GuestLayout.MaxMemory >> 20} MiB");
        var elf = ElfImage.Parse(config.Program, config.ProgramGuestPath);
        ulong bias = elf.PositionIndependent && elf.LowestAddress < PieLoadBias ? PieLoadBias : 0;
        ulong stackReserve = AddressSpace.DefaultStackSize + (2UL << 20);
        if (elf.LowestAddress + bias < AddressSpace.MinAddress)
            throw new ElfFormatException($"{config.ProgramGuestPath} wants to be loaded at 0x{elf.LowestAddress:x}, below the lowest user address 0x{AddressSpace.MinAddress:x}");
        if (elf.HighestAddress + bias > userEnd - stackReserve)
            throw new VmConfigurationException($"{config.ProgramGuestPath} needs memory up to 0x{elf.HighestAddress + bias:x}, which does not fit in {userEnd >> 20} MiB of guest memory (with an 8 MiB stack); give more with --memory");

        var kvm = KvmSystem.Open();
        KvmVm? vm = null;
        SafeMappedMemory? memory = null;
        KvmVcpu? vcpu = null;
        try
        {
            if (kvm.CheckExtension(KvmCaps.SyncRegs) <= 0) throw new KvmException("this host's KVM lacks KVM_CAP_SYNC_REGS, which p2preplay needs");
            vm = kvm.CreateVm();
            vm.SetTssAddress(GuestLayout.KvmTssAddress);
            ulong poolSize = GuestLayout.PageTablePoolSize(userEnd);
            ulong physicalSize = userEnd + poolSize;
            if (snapshot is not null && snapshot.PhysicalSize != physicalSize)
                throw new Snapshots.SnapshotFormatException($"the snapshot was taken of a VM with 0x{snapshot.PhysicalSize:x} bytes of guest-physical memory; this configuration has 0x{physicalSize:x}");
            memory = SafeMappedMemory.AllocateAnonymous(physicalSize);
            vm.SetUserMemoryRegion(0, 0, physicalSize, memory.Pointer, config.TrackGuestWrites ? KvmVm.LogDirtyPages : 0);

            var tables = new PageTables(memory.Pointer, userEnd, physicalSize);
            WriteSystemStructures(memory.Pointer, tables);

            var guestMemory = new GuestMemory(memory.Pointer, userEnd);
            var mapping = memory;
            guestMemory.Residency = (offset, length, vector) => mapping.TryGetResidency(offset, length, vector);
            if (config.TrackGuestWrites)
            {
                var slotBitmap = new ulong[(physicalSize / GuestLayout.PageSize + 63) / 64];
                var dirtyVm = vm;
                guestMemory.CollectGuestWrites = into =>
                {
                    dirtyVm.GetDirtyLog(0, slotBitmap);
                    for (int i = 0; i < into.Length; i++) into[i] |= slotBitmap[i];
                };
            }
            var extraFiles = new Dictionary<string, byte[]>(StringComparer.Ordinal) { [config.ProgramGuestPath] = config.Program };
            var fileSystem = new VirtualFileSystem(config.ImageRoot, extraFiles);
            var process = new LinuxProcess(guestMemory, new KvmPageMapper(tables, memory), host, fileSystem, config.ProgramGuestPath);
            var supported = kvm.GetSupportedCpuid();
            var cpuid = config.Cpuid ?? CpuidBaseline.Normalize(supported);
            if (snapshot is null)
            {
                ulong stackPointer = LoadProgram(process, elf, bias, config, cpuid, host);
                vcpu = vm.CreateVcpu(0);
                ConfigureVcpu(vcpu, cpuid, tables.Root, elf.Entry + bias, stackPointer);
            }
            else
            {
                Snapshots.SnapshotRestore.RestoreMemory(memory.Pointer, userEnd, physicalSize, tables, snapshot);
                Snapshots.PersonalityCodec.Restore(process, snapshot.Personality);
                if (config.TrackGuestWrites && snapshot.WrittenPages.Length > 0) guestMemory.RestoreWrittenPages(snapshot.WrittenPages);
                vcpu = vm.CreateVcpu(0);
                ConfigureVcpu(vcpu, cpuid, tables.Root, 0, 0);
                Snapshots.SnapshotRestore.RestoreVcpu(vcpu, snapshot);
            }
            var result = new MicroVm(kvm, vm, memory, vcpu, process, new SyscallDispatcher(trace), cpuid, HostCpu.Describe(supported), tables, physicalSize, config.TrackGuestWrites, config.HostCpu);
            if (snapshot is not null) result.Runner.RestoreCounters(snapshot.Exits, snapshot.SawUserModeSyscall);
            return result;
        }
        catch
        {
            vcpu?.Dispose();
            memory?.Dispose();
            vm?.Dispose();
            kvm.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Captures the VM's state now. Call it on the vCPU thread between exits (an <see cref="IExitObserver"/>), with where
    /// the replay stands; <see cref="Snapshots.ReplaySnapshots"/> does both.
    /// </summary>
    internal Snapshots.VmSnapshot CaptureSnapshot(Replay.ReplayResumePoint resume) =>
        Snapshots.SnapshotRestore.Capture(_vcpu, _memory, _physicalSize, Process, _tables, Runner, resume, _trackGuestWrites);

    /// <summary>Runs the guest until it exits (its status) or is paused from another thread (null).</summary>
    public ExitStatus? Run() => Runner.Run() == VcpuState.Exited ? Process.Exit : null;

    /// <summary>GDT, IDT, TSS with its I/O bitmap, the stubs, and the page-table entries that map them.</summary>
    private static void WriteSystemStructures(byte* memory, PageTables tables)
    {
        const int TssLimit = 0x68 + 8192; // TSS plus an I/O bitmap covering all 65536 ports (bit set = denied) plus a 0xFF byte
        var gdt = Descriptors.BuildGdt(GuestLayout.TssAddress, TssLimit);
        var physical = new Span<byte>(memory, (int)GuestLayout.KernelAreaEnd);
        for (int i = 0; i < gdt.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(physical[((int)GuestLayout.GdtAddress + i * 8)..], gdt[i]);

        for (int vector = 0; vector < 256; vector++)
        {
            ulong handler = GuestLayout.ExceptionStubsAddress + (ulong)(vector * GuestLayout.ExceptionStubStride);
            // int3 and into may be issued from user mode (DPL 3) as on Linux; everything else #GPs from CPL3.
            int dpl = vector is X86.VectorBreakpoint or X86.VectorOverflow ? 3 : 0;
            var (low, high) = Descriptors.InterruptGate(handler, Descriptors.KernelCodeSelector, dpl);
            int at = (int)GuestLayout.IdtAddress + vector * 16;
            BinaryPrimitives.WriteUInt64LittleEndian(physical[at..], low);
            BinaryPrimitives.WriteUInt64LittleEndian(physical[(at + 8)..], high);
        }

        var tss = physical.Slice((int)GuestLayout.TssAddress, TssLimit + 1);
        BinaryPrimitives.WriteUInt64LittleEndian(tss[4..], GuestLayout.KernelStackTop); // RSP0
        BinaryPrimitives.WriteUInt16LittleEndian(tss[0x66..], 0x68);                   // I/O map base address
        var ioBitmap = tss.Slice(0x68, 8192 + 1);
        ioBitmap.Fill(0xFF);
        // kvm_pvm ignores IOPL, so the one port the CPL3 syscall stub uses is allowed here (SDM 3A §20.5.2 I/O bitmap).
        ioBitmap[GuestLayout.SyscallPort / 8] &= unchecked((byte)~(1 << (GuestLayout.SyscallPort % 8)));

        Stubs.SyscallStub().CopyTo(physical[(int)GuestLayout.SyscallStubAddress..]);
        Stubs.ExceptionStubs().CopyTo(physical[(int)GuestLayout.ExceptionStubsAddress..]);

        tables.Map(GuestLayout.GdtAddress, GuestLayout.KernelStackTop - GuestLayout.GdtAddress, PageAccess.Read | PageAccess.Write);
        // Under kvm_pvm SYSCALL stays at CPL3, so the stub page must be user-readable (KVM-NOTES: #PF 0x15 otherwise).
        tables.Map(GuestLayout.SyscallStubAddress, GuestLayout.PageSize, PageAccess.Read | PageAccess.Execute | PageAccess.User);
        tables.Map(GuestLayout.ExceptionStubsAddress, GuestLayout.PageSize, PageAccess.Read | PageAccess.Execute);
    }

    /// <summary>Maps and fills the PT_LOAD segments, maps the stack and writes argv/envp/auxv; returns the initial stack pointer.</summary>
    private static ulong LoadProgram(LinuxProcess process, ElfImage elf, ulong bias, VmConfiguration config, KvmCpuidEntry2[] cpuid, IHostEnvironment host)
    {
        var space = process.AddressSpace;
        ulong mappedEnd = 0;
        foreach (var segment in elf.Segments)
        {
            ulong start = GuestMemory.PageAlignDown(segment.VirtualAddress + bias);
            ulong end = GuestMemory.PageAlignUp(segment.VirtualAddress + bias + segment.MemorySize);
            var protection = (segment.Read ? Protection.Read : 0) | (segment.Write ? Protection.Write : 0) | (segment.Execute ? Protection.Execute : 0);
            if (start < mappedEnd)
            {
                // Two segments share a page: it gets the union of their rights, and its contents are kept.
                space.Protect(start, mappedEnd - start, process.Memory.GetProtection(start) | protection);
                start = mappedEnd;
            }
            if (end > start) space.MapFixed(start, end - start, protection);
            mappedEnd = Math.Max(mappedEnd, end);
        }
        foreach (var segment in elf.Segments)
        {
            config.Program.AsSpan((int)segment.Offset, (int)segment.FileSize)
                .CopyTo(process.Memory.UncheckedSpan(segment.VirtualAddress + bias, (int)segment.FileSize));
        }
        space.Initialize(elf.HighestAddress + bias);

        uint hwcap = cpuid.FirstOrDefault(e => e.Function == 1).Edx;
        var auxv = new List<(ulong, ulong)>
        {
            (AuxvType.Phdr, (elf.ProgramHeaderAddress ?? 0) + bias),
            (AuxvType.Phent, 56),
            (AuxvType.Phnum, (ulong)elf.ProgramHeaderCount),
            (AuxvType.Pagesz, GuestMemory.PageSize),
            (AuxvType.Base, 0),
            (AuxvType.Flags, 0),
            (AuxvType.Entry, elf.Entry + bias),
            (AuxvType.Uid, LinuxProcess.UserId),
            (AuxvType.Euid, LinuxProcess.UserId),
            (AuxvType.Gid, LinuxProcess.GroupId),
            (AuxvType.Egid, LinuxProcess.GroupId),
            (AuxvType.Hwcap, hwcap),
            (AuxvType.Hwcap2, 0),
            (AuxvType.Clktck, 100),
            (AuxvType.Secure, 0),
        };
        Span<byte> random = stackalloc byte[16];
        host.GetRandomBytes(random);
        var stack = InitialStack.Build(space.StackTop, config.Arguments, config.Environment, auxv, config.ProgramGuestPath, random);
        if (space.StackTop - stack.StackPointer > AddressSpace.DefaultStackSize / 4)
            throw new VmConfigurationException("the arguments and environment are too large (more than 2 MiB)");
        stack.Bytes.CopyTo(process.Memory.UncheckedSpan(stack.StackPointer, stack.Bytes.Length));
        return stack.StackPointer;
    }

    /// <summary>Long mode at CPL3: segments, control registers, SYSCALL MSRs, CPUID and XCR0 baselines. </summary>
    private static void ConfigureVcpu(KvmVcpu vcpu, KvmCpuidEntry2[] cpuid, ulong cr3, ulong entry, ulong stackPointer)
    {
        vcpu.SetCpuid(cpuid);
        bool xsave = (cpuid.FirstOrDefault(e => e.Function == 1).Ecx & (1u << 26)) != 0; // CPUID.01H:ECX[26] XSAVE

        var sregs = vcpu.GetSregs();
        sregs.Cs = Segments.UserCode;
        sregs.Ss = Segments.UserData(Descriptors.UserDataSelector);
        sregs.Ds = sregs.Es = sregs.Fs = sregs.Gs = Segments.UserData(0);
        sregs.Tr = new KvmSegment
        {
            Base = GuestLayout.TssAddress, Limit = 0x68 + 8192, Selector = Descriptors.TssSelector,
            Type = 0xB, Present = 1, S = 0, // busy 64-bit TSS (SDM 3A Table 3-2)
        };
        sregs.Ldt = new KvmSegment { Type = 0x2, Present = 0, Unusable = 1 };
        sregs.Gdt = new KvmDtable { Base = GuestLayout.GdtAddress, Limit = 10 * 8 - 1 };
        sregs.Idt = new KvmDtable { Base = GuestLayout.IdtAddress, Limit = 256 * 16 - 1 };
        sregs.Cr0 = X86.Cr0Pe | X86.Cr0Mp | X86.Cr0Et | X86.Cr0Ne | X86.Cr0Wp | X86.Cr0Am | X86.Cr0Pg;
        sregs.Cr3 = cr3;
        sregs.Cr4 = X86.Cr4Pae | X86.Cr4Osfxsr | X86.Cr4Osxmmexcpt | X86.Cr4Tsd | (xsave ? X86.Cr4Osxsave : 0);
        sregs.Efer = X86.EferSce | X86.EferLme | X86.EferLma | X86.EferNxe;
        vcpu.SetSregs(sregs);

        if (xsave) vcpu.TrySetXcr0(CpuidBaseline.Xcr0);

        vcpu.SetMsrs(
        [
            new KvmMsrEntry { Index = X86.MsrStar, Data = Descriptors.StarValue },
            new KvmMsrEntry { Index = X86.MsrLstar, Data = GuestLayout.SyscallStubAddress },
            new KvmMsrEntry { Index = X86.MsrCstar, Data = GuestLayout.SyscallStubAddress },
            new KvmMsrEntry { Index = X86.MsrSfmask, Data = X86.RflagsTf | X86.RflagsIf | X86.RflagsDf | X86.RflagsAc },
        ]);

        vcpu.SetRegs(new KvmRegs { Rip = entry, Rsp = stackPointer, Rflags = X86.RflagsReserved });
    }

    public void Dispose()
    {
        _vcpu.Dispose();
        _memory.Dispose();
        _vm.Dispose();
        _kvm.Dispose();
    }
}

/// <summary>The VM cannot be built as asked (memory size, program size); the message says what to change.</summary>
internal sealed class VmConfigurationException(string message) : Exception(message);

/// <summary>The hidden parts of the user segment registers (flat, 64-bit code; flat data).</summary>
internal static class Segments
{
    public static KvmSegment UserCode => new()
    {
        Base = 0, Limit = 0xFFFFFFFF, Selector = Descriptors.UserCodeSelector,
        Type = 0xB, Present = 1, Dpl = 3, Db = 0, S = 1, L = 1, G = 1, // execute/read, accessed; 64-bit (SDM 3A §3.4.5.1)
    };

    public static KvmSegment UserData(ushort selector) => new()
    {
        Base = 0, Limit = 0xFFFFFFFF, Selector = selector,
        Type = 0x3, Present = 1, Dpl = 3, Db = 1, S = 1, L = 0, G = 1, // read/write, accessed
    };
}
