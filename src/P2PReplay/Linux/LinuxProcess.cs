using P2PReplay.Linux.FileSystem;
using P2PReplay.Linux.Memory;

namespace P2PReplay.Linux;

/// <summary>
/// The single-threaded Linux process the VM runs: address space, files, signal dispositions and identity.
/// Identity values are fixed so that nothing about the host leaks in through them.
/// </summary>
public sealed class LinuxProcess
{
    public const int ProcessId = 100;
    public const int ParentProcessId = 1;
    public const int UserId = 1000;
    public const int GroupId = 1000;

    public LinuxProcess(GuestMemory memory, IPageMapper mapper, IHostEnvironment host, VirtualFileSystem fileSystem, string executablePath)
    {
        Memory = memory;
        AddressSpace = new AddressSpace(memory, mapper);
        Host = host;
        FileSystem = fileSystem;
        Files = new FileTable(fileSystem, host);
        Network = new Net.VirtualNetwork(() => host.Network, host.MonotonicNanoseconds);
        ExecutablePath = executablePath;
        string baseName = executablePath[(executablePath.LastIndexOf('/') + 1)..];
        Name = System.Text.Encoding.UTF8.GetBytes(baseName).AsSpan(0, Math.Min(15, System.Text.Encoding.UTF8.GetByteCount(baseName))).ToArray();
    }

    public GuestMemory Memory { get; }

    public AddressSpace AddressSpace { get; }

    public IHostEnvironment Host { get; }

    public VirtualFileSystem FileSystem { get; }

    public FileTable Files { get; }

    /// <summary>The guest's sockets and connections; network input comes from <see cref="IHostEnvironment.Network"/>.</summary>
    public Net.VirtualNetwork Network { get; }

    /// <summary>Absolute guest path of the running program (/proc/self/exe).</summary>
    public string ExecutablePath { get; }

    /// <summary>The calling vCPU's context; the VMM sets it before it dispatches a syscall.</summary>
    public ICpuContext Cpu { get; set; } = NoCpu.Instance;

    public SignalState Signals { get; } = new();

    public int ThreadId => ProcessId;

    /// <summary>The syscall being handled (-1 between syscalls): logged with each input, for divergence reports.</summary>
    public int CurrentSyscall { get; internal set; } = -1;

    /// <summary>The syscall of the latest exit (-1 when that exit was not a syscall): digests name it.</summary>
    public int LastSyscall { get; set; } = -1;

    /// <summary>set_tid_address: cleared (and futex-woken) at thread exit.</summary>
    public ulong ClearChildTid { get; set; }

    public uint Umask { get; set; } = 0x12; // 022

    /// <summary>prctl PR_SET_NAME / PR_GET_NAME (at most 15 bytes).</summary>
    public byte[] Name { get; set; } = [];

    /// <summary>Where the VMM tells the user about guest behaviour it cannot serve (once per topic).</summary>
    public Action<string> Notice { get; set; } = static message => Console.Error.WriteLine(message);

    private readonly HashSet<string> _noticesGiven = [];

    public void NoticeOnce(string topic, string message)
    {
        if (_noticesGiven.Add(topic)) Notice(message);
    }

    public ExitStatus? Exit { get; private set; }

    public bool HasExited => Exit is not null;

    /// <summary>Ends the process; the first exit wins.</summary>
    public void Terminate(ExitStatus status) => Exit ??= status;

    private sealed class NoCpu : ICpuContext
    {
        public static readonly NoCpu Instance = new();
        private UserRegisters _registers;
        public ulong FsBase { get; set; }
        public ulong GsBase { get; set; }
        public ref UserRegisters Registers => ref _registers;
        public UserRegisters ResumeRegisters => _registers;
    }
}
