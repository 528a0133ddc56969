using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

internal static partial class NativeLstat
{
    /// <summary>x86-64 struct stat: 144 bytes, st_mode (u32) at offset 24.</summary>
    private const int StatSize = 144;
    private const int ModeOffset = 24;
    public const int S_IFMT = 0xF000;
    public const int S_IFREG = 0x8000;
    public const int S_IFDIR = 0x4000;
    public const int S_IFLNK = 0xA000;

    [LibraryImport(Libc.Name, EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Lstat(string path, Span<byte> stat);

    /// <summary>The file type bits (S_IFMT) of path itself (a symlink is not followed), or null when it cannot be stat'ed.</summary>
    public static int? FileType(string path)
    {
        Span<byte> stat = stackalloc byte[StatSize];
        if (Lstat(path, stat) != 0) return null;
        return (int)BinaryPrimitives.ReadUInt32LittleEndian(stat[ModeOffset..]) & S_IFMT;
    }
}
