namespace P2PReplay.Interop;

/// <summary>Shared constants for the libc entry points declared one per file in this folder.</summary>
internal static class Libc
{
    public const string Name = "libc";

    public const int O_RDONLY = 0;
    public const int O_RDWR = 2;
    public const int O_CLOEXEC = 0x80000;

    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_NORESERVE = 0x4000;
    public const int MADV_DONTNEED = 4;
    public const int MADV_HUGEPAGE = 14;

    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int EACCES = 13;
    public const int ENOENT = 2;
    public const int EPERM = 1;

    public static readonly nint MapFailed = -1;
}
