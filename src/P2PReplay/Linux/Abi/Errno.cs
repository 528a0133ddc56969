namespace P2PReplay.Linux.Abi;

/// <summary>Linux errno values (asm-generic/errno-base.h, errno.h). Syscalls return -errno.</summary>
public static class Errno
{
    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8,
        EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17,
        EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENFILE = 23, EMFILE = 24, ENOTTY = 25,
        EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EMLINK = 31, EPIPE = 32, EDOM = 33, ERANGE = 34,
        EDEADLK = 35, ENAMETOOLONG = 36, ENOLCK = 37, ENOSYS = 38, ENOTEMPTY = 39, ELOOP = 40, ENODATA = 61,
        EOVERFLOW = 75, ENOTSOCK = 88, EOPNOTSUPP = 95, EAFNOSUPPORT = 97, ETIMEDOUT = 110,
        EMSGSIZE = 90, ENOPROTOOPT = 92, EPROTONOSUPPORT = 93, ESOCKTNOSUPPORT = 94, EADDRINUSE = 98, EADDRNOTAVAIL = 99,
        ENETUNREACH = 101, EISCONN = 106, ENOTCONN = 107, ECONNREFUSED = 111;

    private static readonly string[] Names = BuildNames();

    /// <summary>The symbolic name of an errno, for traces ("ENOENT").</summary>
    public static string Name(int errno) => errno > 0 && errno < Names.Length && Names[errno] is { } n ? n : $"E{errno}";

    private static string[] BuildNames()
    {
        var names = new string[112];
        void Set(int n, string s) => names[n] = s;
        Set(EPERM, "EPERM"); Set(ENOENT, "ENOENT"); Set(ESRCH, "ESRCH"); Set(EINTR, "EINTR"); Set(EIO, "EIO");
        Set(ENXIO, "ENXIO"); Set(E2BIG, "E2BIG"); Set(ENOEXEC, "ENOEXEC"); Set(EBADF, "EBADF"); Set(ECHILD, "ECHILD");
        Set(EAGAIN, "EAGAIN"); Set(ENOMEM, "ENOMEM"); Set(EACCES, "EACCES"); Set(EFAULT, "EFAULT"); Set(EBUSY, "EBUSY");
        Set(EEXIST, "EEXIST"); Set(EXDEV, "EXDEV"); Set(ENODEV, "ENODEV"); Set(ENOTDIR, "ENOTDIR"); Set(EISDIR, "EISDIR");
        Set(EINVAL, "EINVAL"); Set(ENFILE, "ENFILE"); Set(EMFILE, "EMFILE"); Set(ENOTTY, "ENOTTY"); Set(EFBIG, "EFBIG");
        Set(ENOSPC, "ENOSPC"); Set(ESPIPE, "ESPIPE"); Set(EROFS, "EROFS"); Set(EMLINK, "EMLINK"); Set(EPIPE, "EPIPE");
        Set(EDOM, "EDOM"); Set(ERANGE, "ERANGE"); Set(EDEADLK, "EDEADLK"); Set(ENAMETOOLONG, "ENAMETOOLONG");
        Set(ENOLCK, "ENOLCK"); Set(ENOSYS, "ENOSYS"); Set(ENOTEMPTY, "ENOTEMPTY"); Set(ELOOP, "ELOOP");
        Set(ENODATA, "ENODATA"); Set(EOVERFLOW, "EOVERFLOW"); Set(ENOTSOCK, "ENOTSOCK"); Set(EOPNOTSUPP, "EOPNOTSUPP");
        Set(EMSGSIZE, "EMSGSIZE"); Set(ENOPROTOOPT, "ENOPROTOOPT"); Set(EPROTONOSUPPORT, "EPROTONOSUPPORT");
        Set(ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"); Set(EADDRINUSE, "EADDRINUSE"); Set(EADDRNOTAVAIL, "EADDRNOTAVAIL");
        Set(ENETUNREACH, "ENETUNREACH"); Set(EISCONN, "EISCONN"); Set(ENOTCONN, "ENOTCONN"); Set(ECONNREFUSED, "ECONNREFUSED");
        Set(EAFNOSUPPORT, "EAFNOSUPPORT"); Set(ETIMEDOUT, "ETIMEDOUT");
        return names;
    }
}
