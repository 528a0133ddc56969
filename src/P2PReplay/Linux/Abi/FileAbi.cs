using System.Runtime.InteropServices;

namespace P2PReplay.Linux.Abi;

/// <summary>open(2) flags as x86-64 Linux defines them (asm-generic/fcntl.h).</summary>
public static class OpenFlags
{
    public const int AccessModeMask = 3, ReadOnly = 0, WriteOnly = 1, ReadWrite = 2;
    public const int Create = 0x40, Exclusive = 0x80, NoCtty = 0x100, Truncate = 0x200, Append = 0x400, NonBlock = 0x800,
        DSync = 0x1000, Async = 0x2000, Direct = 0x4000, LargeFile = 0x8000, Directory = 0x10000, NoFollow = 0x20000,
        NoAtime = 0x40000, CloseOnExec = 0x80000, Sync = 0x101000, Path = 0x200000, TmpFile = 0x410000;

    /// <summary>The flags F_SETFL may change (the others are ignored, as Linux does).</summary>
    public const int SettableStatus = Append | NonBlock | Async | Direct | NoAtime;
}

/// <summary>st_mode file types and bits.</summary>
public static class FileModes
{
    public const uint TypeMask = 0xF000, Fifo = 0x1000, CharDevice = 0x2000, Directory = 0x4000, Regular = 0x8000,
        Symlink = 0xA000, Socket = 0xC000;
    public const uint PermissionMask = 0xFFF; // 07777
}

/// <summary>*at() flags and the AT_FDCWD sentinel.</summary>
public static class AtFlags
{
    public const int FdCwd = -100;
    public const int SymlinkNoFollow = 0x100, RemoveDir = 0x200, EAccess = 0x200, SymlinkFollow = 0x400,
        NoAutomount = 0x800, EmptyPath = 0x1000, StatxSyncTypeMask = 0x6000;
}

/// <summary>fcntl commands.</summary>
public static class FcntlCommands
{
    public const int DupFd = 0, GetFd = 1, SetFd = 2, GetFl = 3, SetFl = 4, GetLk = 5, SetLk = 6, SetLkW = 7,
        SetOwn = 8, GetOwn = 9, OfdGetLk = 36, OfdSetLk = 37, OfdSetLkW = 38, SetLease = 1024, GetLease = 1025,
        DupFdCloseOnExec = 1030, SetPipeSize = 1031, GetPipeSize = 1032, AddSeals = 1033, GetSeals = 1034;
    public const int FdCloseOnExec = 1;
    public const short Unlock = 2;
}

/// <summary>Terminal and file ioctls the personality recognises.</summary>
public static class IoctlRequests
{
    public const uint TcGets = 0x5401, TcSets = 0x5402, TiocGPgrp = 0x540F, TiocSPgrp = 0x5410, TiocGWinSz = 0x5413,
        FionRead = 0x541B, FionBio = 0x5421, FionClex = 0x5450, FioClex = 0x5451;
}

/// <summary>lseek whence values.</summary>
public static class SeekWhence
{
    public const int Set = 0, Current = 1, End = 2, Data = 3, Hole = 4;
}

/// <summary>linux_dirent64 d_type values.</summary>
public static class DirentTypes
{
    public const byte Unknown = 0, Fifo = 1, CharDevice = 2, Directory = 4, Regular = 8, Symlink = 10;
}

/// <summary>x86-64 struct stat (144 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LinuxStat
{
    public ulong Dev;
    public ulong Ino;
    public ulong Nlink;
    public uint Mode;
    public uint Uid;
    public uint Gid;
    public uint Pad0;
    public ulong Rdev;
    public long Size;
    public long BlockSize;
    public long Blocks;
    public long AtimeSec;
    public long AtimeNsec;
    public long MtimeSec;
    public long MtimeNsec;
    public long CtimeSec;
    public long CtimeNsec;
    public long Reserved0;
    public long Reserved1;
    public long Reserved2;
}

/// <summary>struct statx_timestamp (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct StatxTimestamp
{
    public long Sec;
    public uint Nsec;
    public int Reserved;
}

/// <summary>struct statx (256 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 256)]
public struct LinuxStatx
{
    public const uint BasicStats = 0x7FF; // STATX_TYPE..STATX_BLOCKS

    public uint Mask;
    public uint BlockSize;
    public ulong Attributes;
    public uint Nlink;
    public uint Uid;
    public uint Gid;
    public ushort Mode;
    public ushort Pad1;
    public ulong Ino;
    public ulong Size;
    public ulong Blocks;
    public ulong AttributesMask;
    public StatxTimestamp Atime;
    public StatxTimestamp Btime;
    public StatxTimestamp Ctime;
    public StatxTimestamp Mtime;
    public uint RdevMajor;
    public uint RdevMinor;
    public uint DevMajor;
    public uint DevMinor;
}

/// <summary>x86-64 struct statfs (120 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LinuxStatfs
{
    public long Type;
    public long BlockSize;
    public ulong Blocks;
    public ulong BlocksFree;
    public ulong BlocksAvailable;
    public ulong Files;
    public ulong FilesFree;
    public int FsId0;
    public int FsId1;
    public long NameLength;
    public long FragmentSize;
    public long Flags;
    public long Spare0;
    public long Spare1;
    public long Spare2;
    public long Spare3;
}

/// <summary>struct iovec.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoVec
{
    public ulong Base;
    public ulong Length;
}

/// <summary>struct timespec.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Timespec
{
    public const long UtimeNow = (1L << 30) - 1, UtimeOmit = (1L << 30) - 2;

    public long Sec;
    public long Nsec;
}
