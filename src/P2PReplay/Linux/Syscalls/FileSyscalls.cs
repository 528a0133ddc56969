using P2PReplay.Linux.Abi;
using P2PReplay.Linux.FileSystem;
using static P2PReplay.Linux.Syscalls.ArgKind;
using static P2PReplay.Linux.Syscalls.FileSyscallSupport;

namespace P2PReplay.Linux.Syscalls;

/// <summary>Descriptor I/O: read/write and their vector and positional forms, close, dup, fcntl, ioctl, pipes, getdents.</summary>
public static class FileSyscalls
{
    private const int MaxIoVectors = 1024;
    private const int SendfileChunk = 64 * 1024;

    public static IEnumerable<SyscallDescriptor> Descriptors() =>
    [
        new(0, "read", SupportLevel.Full, Read, [Fd, OutBuffer, Size]),
        new(1, "write", SupportLevel.Full, Write, [Fd, InBuffer, Size]),
        new(3, "close", SupportLevel.Full, Close, [Fd]),
        new(5, "fstat", SupportLevel.Full, Fstat, [Fd, Pointer]),
        new(8, "lseek", SupportLevel.Full, Lseek, [Fd, Int, Int]),
        new(16, "ioctl", SupportLevel.Partial, Ioctl, [Fd, Hex, Pointer]),
        new(17, "pread64", SupportLevel.Full, Pread, [Fd, OutBuffer, Size, Int]),
        new(18, "pwrite64", SupportLevel.Full, Pwrite, [Fd, InBuffer, Size, Int]),
        new(19, "readv", SupportLevel.Full, Readv, [Fd, Pointer, Int]),
        new(20, "writev", SupportLevel.Full, Writev, [Fd, Pointer, Int]),
        new(22, "pipe", SupportLevel.Full, Pipe, [Pointer]),
        new(32, "dup", SupportLevel.Full, Dup, [Fd]),
        new(33, "dup2", SupportLevel.Full, Dup2, [Fd, Fd]),
        new(40, "sendfile", SupportLevel.Full, Sendfile, [Fd, Fd, Pointer, Size]),
        new(72, "fcntl", SupportLevel.Partial, Fcntl, [Fd, Int, Hex]),
        new(73, "flock", SupportLevel.NoOp, Flock, [Fd, Hex]),
        new(74, "fsync", SupportLevel.NoOp, ValidFdNoOp, [Fd]),
        new(75, "fdatasync", SupportLevel.NoOp, ValidFdNoOp, [Fd]),
        new(77, "ftruncate", SupportLevel.Full, Ftruncate, [Fd, Int]),
        new(78, "getdents", SupportLevel.Full, Getdents, [Fd, Pointer, Size]),
        new(81, "fchdir", SupportLevel.Full, Fchdir, [Fd]),
        new(91, "fchmod", SupportLevel.Full, Fchmod, [Fd, Octal]),
        new(93, "fchown", SupportLevel.Full, Fchown, [Fd, Int, Int]),
        new(138, "fstatfs", SupportLevel.Partial, Fstatfs, [Fd, Pointer]),
        new(162, "sync", SupportLevel.NoOp, static (_, in _) => 0, []),
        new(217, "getdents64", SupportLevel.Full, Getdents64, [Fd, Pointer, Size]),
        new(221, "fadvise64", SupportLevel.NoOp, Fadvise, [Fd, Int, Size, Int]),
        new(285, "fallocate", SupportLevel.Partial, Fallocate, [Fd, Hex, Int, Int]),
        new(292, "dup3", SupportLevel.Full, Dup3, [Fd, Fd, Hex]),
        new(293, "pipe2", SupportLevel.Full, Pipe2, [Pointer, Hex]),
        new(295, "preadv", SupportLevel.Full, Preadv, [Fd, Pointer, Int, Int]),
        new(296, "pwritev", SupportLevel.Full, Pwritev, [Fd, Pointer, Int, Int]),
        new(306, "syncfs", SupportLevel.NoOp, ValidFdNoOp, [Fd]),
        new(326, "copy_file_range", SupportLevel.Full, CopyFileRange, [Fd, Pointer, Fd, Pointer, Size, Hex]),
        new(436, "close_range", SupportLevel.Full, CloseRange, [Fd, Fd, Hex]),
    ];

    private static OpenFile? Readable(LinuxProcess p, int fd) => p.Files.Get(fd) is { CanRead: true } f ? f : null;

    private static OpenFile? Writable(LinuxProcess p, int fd) => p.Files.Get(fd) is { CanWrite: true } f ? f : null;

    private static long Read(LinuxProcess p, in SyscallArgs a)
    {
        var file = Readable(p, a.Int(0));
        if (file is null) return -Errno.EBADF;
        if (file.Node is { IsDirectory: true }) return -Errno.EISDIR;
        if (!TryOutBuffer(p, a.A1, a.A2, out var buffer, out long error)) return error;
        return file.Read(p, buffer);
    }

    private static long Write(LinuxProcess p, in SyscallArgs a)
    {
        var file = Writable(p, a.Int(0));
        if (file is null) return -Errno.EBADF;
        if (!TryInBuffer(p, a.A1, a.A2, out var buffer, out long error)) return error;
        return file.Write(p, buffer);
    }

    private static long Pread(LinuxProcess p, in SyscallArgs a)
    {
        var file = Readable(p, a.Int(0));
        if (file is null) return -Errno.EBADF;
        if (file.Node is { IsDirectory: true }) return -Errno.EISDIR;
        long offset = (long)a.A3;
        if (offset < 0) return -Errno.EINVAL;
        if (file.Node is null) return -Errno.ESPIPE;
        if (!TryOutBuffer(p, a.A1, a.A2, out var buffer, out long error)) return error;
        return file.PRead(buffer, offset);
    }

    private static long Pwrite(LinuxProcess p, in SyscallArgs a)
    {
        var file = Writable(p, a.Int(0));
        if (file is null) return -Errno.EBADF;
        long offset = (long)a.A3;
        if (offset < 0) return -Errno.EINVAL;
        if (file.Node is null) return -Errno.ESPIPE;
        if (!TryInBuffer(p, a.A1, a.A2, out var buffer, out long error)) return error;
        return file.PWrite(p, buffer, offset);
    }

    private static long Readv(LinuxProcess p, in SyscallArgs a) => Vector(p, a.Int(0), a.A1, a.Int(2), -1, write: false);

    private static long Writev(LinuxProcess p, in SyscallArgs a) => Vector(p, a.Int(0), a.A1, a.Int(2), -1, write: true);

    private static long Preadv(LinuxProcess p, in SyscallArgs a) =>
        (long)a.A3 < 0 ? -Errno.EINVAL : Vector(p, a.Int(0), a.A1, a.Int(2), (long)a.A3, write: false);

    private static long Pwritev(LinuxProcess p, in SyscallArgs a) =>
        (long)a.A3 < 0 ? -Errno.EINVAL : Vector(p, a.Int(0), a.A1, a.Int(2), (long)a.A3, write: true);

    /// <summary>readv/writev/preadv/pwritev; <paramref name="offset"/> -1 uses and moves the file position.</summary>
    private static long Vector(LinuxProcess p, int fd, ulong vectors, int count, long offset, bool write)
    {
        var file = write ? Writable(p, fd) : Readable(p, fd);
        if (file is null) return -Errno.EBADF;
        if (!write && file.Node is { IsDirectory: true }) return -Errno.EISDIR;
        if (offset >= 0 && file.Node is null) return -Errno.ESPIPE;
        if (count < 0 || count > MaxIoVectors) return -Errno.EINVAL;
        var iov = new IoVec[count];
        long total = 0;
        for (int i = 0; i < count; i++)
        {
            if (!p.Memory.TryRead(vectors + (ulong)i * 16, out iov[i])) return -Errno.EFAULT;
            if ((long)iov[i].Length < 0) return -Errno.EINVAL;
            total += (long)iov[i].Length;
            if (total < 0) return -Errno.EINVAL;
        }
        long done = 0;
        for (int i = 0; i < count && done < MaxTransfer; i++)
        {
            ulong length = Math.Min(iov[i].Length, (ulong)(MaxTransfer - done));
            if (length == 0) continue;
            long n;
            if (write)
            {
                if (!TryInBuffer(p, iov[i].Base, length, out var span, out long error)) return done > 0 ? done : error;
                n = offset >= 0 ? file.PWrite(p, span, offset + done) : file.Write(p, span);
            }
            else
            {
                if (!TryOutBuffer(p, iov[i].Base, length, out var span, out long error)) return done > 0 ? done : error;
                n = offset >= 0 ? file.PRead(span, offset + done) : file.Read(p, span);
            }
            if (n < 0) return done > 0 ? done : n;
            done += n;
            if ((ulong)n < iov[i].Length) break;
        }
        return done;
    }

    private static long Close(LinuxProcess p, in SyscallArgs a) => p.Files.Close(a.Int(0));

    private static long Fstat(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null) return -Errno.EBADF;
        var st = file.Stat(p.FileSystem);
        return p.Memory.TryWrite(a.A1, in st) ? 0 : -Errno.EFAULT;
    }

    private static long Lseek(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null || file.IsPathOnly) return -Errno.EBADF;
        return file.Seek((long)a.A1, a.Int(2));
    }

    private static long Ioctl(LinuxProcess p, in SyscallArgs a)
    {
        int fd = a.Int(0);
        var file = p.Files.Get(fd);
        if (file is null || file.IsPathOnly) return -Errno.EBADF;
        switch ((uint)a.A1)
        {
            case IoctlRequests.FionRead:
                if (file.Node is { IsDirectory: true }) return -Errno.ENOTTY;
                int available = (int)Math.Min(file.BytesAvailable, int.MaxValue);
                return p.Memory.TryWrite(a.A2, in available) ? 0 : -Errno.EFAULT;
            case IoctlRequests.FioClex:
                p.Files.SetCloseOnExec(fd, true);
                return 0;
            case IoctlRequests.FionClex:
                p.Files.SetCloseOnExec(fd, false);
                return 0;
            case IoctlRequests.FionBio:
                if (!p.Memory.TryRead(a.A2, out int on)) return -Errno.EFAULT;
                file.Flags = on != 0 ? file.Flags | OpenFlags.NonBlock : file.Flags & ~OpenFlags.NonBlock;
                return 0;
            default:
                // No descriptor of the VM is a terminal (TCGETS, TIOCGWINSZ, ... all fail the same on every host).
                return -Errno.ENOTTY;
        }
    }

    private static long Pipe(LinuxProcess p, in SyscallArgs a) => MakePipe(p, a.A0, 0);

    private static long Pipe2(LinuxProcess p, in SyscallArgs a) => MakePipe(p, a.A0, a.Int(1));

    private static long MakePipe(LinuxProcess p, ulong fdsAddress, int flags)
    {
        const int Direct = OpenFlags.Direct, Allowed = OpenFlags.CloseOnExec | OpenFlags.NonBlock | Direct | 0x80 /* O_NOTIFICATION_PIPE */;
        if ((flags & ~Allowed) != 0) return -Errno.EINVAL;
        if (!p.Memory.IsAccessible(fdsAddress, 8, Memory.Protection.Write)) return -Errno.EFAULT;
        bool closeOnExec = (flags & OpenFlags.CloseOnExec) != 0;
        var (readEnd, writeEnd) = p.Files.CreatePipe(flags & OpenFlags.NonBlock);
        int readFd = p.Files.Add(readEnd, closeOnExec);
        if (readFd < 0)
        {
            readEnd.Released();
            writeEnd.Released();
            return readFd;
        }
        int writeFd = p.Files.Add(writeEnd, closeOnExec);
        if (writeFd < 0)
        {
            p.Files.Close(readFd);
            writeEnd.Released();
            return writeFd;
        }
        p.Memory.TryWrite(fdsAddress, in readFd);
        p.Memory.TryWrite(fdsAddress + 4, in writeFd);
        return 0;
    }

    private static long Dup(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        return file is null ? -Errno.EBADF : p.Files.Add(file, closeOnExec: false);
    }

    private static long Dup2(LinuxProcess p, in SyscallArgs a)
    {
        int oldFd = a.Int(0), newFd = a.Int(1);
        var file = p.Files.Get(oldFd);
        if (file is null) return -Errno.EBADF;
        if (oldFd == newFd) return newFd;
        return p.Files.Replace(newFd, file, closeOnExec: false);
    }

    private static long Dup3(LinuxProcess p, in SyscallArgs a)
    {
        int oldFd = a.Int(0), newFd = a.Int(1), flags = a.Int(2);
        if ((flags & ~OpenFlags.CloseOnExec) != 0) return -Errno.EINVAL;
        var file = p.Files.Get(oldFd);
        if (file is null) return -Errno.EBADF;
        if (oldFd == newFd) return -Errno.EINVAL;
        return p.Files.Replace(newFd, file, closeOnExec: flags != 0);
    }

    private static long Fcntl(LinuxProcess p, in SyscallArgs a)
    {
        int fd = a.Int(0), command = a.Int(1);
        var file = p.Files.Get(fd);
        if (file is null) return -Errno.EBADF;
        switch (command)
        {
            case FcntlCommands.DupFd:
            case FcntlCommands.DupFdCloseOnExec:
            {
                int minimum = a.Int(2);
                if (minimum < 0 || minimum >= FileTable.MaxDescriptors) return -Errno.EINVAL;
                return p.Files.Add(file, command == FcntlCommands.DupFdCloseOnExec, minimum);
            }
            case FcntlCommands.GetFd:
                return p.Files.IsCloseOnExec(fd) ? FcntlCommands.FdCloseOnExec : 0;
            case FcntlCommands.SetFd:
                p.Files.SetCloseOnExec(fd, (a.A2 & FcntlCommands.FdCloseOnExec) != 0);
                return 0;
            case FcntlCommands.GetFl:
                return file.Flags | OpenFlags.LargeFile;
            case FcntlCommands.SetFl:
                if (file.IsPathOnly) return -Errno.EBADF;
                file.Flags = (file.Flags & ~OpenFlags.SettableStatus) | (a.Int(2) & OpenFlags.SettableStatus);
                return 0;
            case FcntlCommands.GetLk:
            case FcntlCommands.OfdGetLk:
            {
                // One process holds every lock there is: nothing ever conflicts (struct flock's l_type becomes F_UNLCK).
                if (!p.Memory.TryRead(a.A2, out short type)) return -Errno.EFAULT;
                if (type is < 0 or > 2) return -Errno.EINVAL;
                short unlock = FcntlCommands.Unlock;
                return p.Memory.TryWrite(a.A2, in unlock) ? 0 : -Errno.EFAULT;
            }
            case FcntlCommands.SetLk:
            case FcntlCommands.SetLkW:
            case FcntlCommands.OfdSetLk:
            case FcntlCommands.OfdSetLkW:
            {
                if (!p.Memory.TryRead(a.A2, out short type)) return -Errno.EFAULT;
                return type is < 0 or > 2 ? -Errno.EINVAL : 0;
            }
            case FcntlCommands.GetOwn:
            case FcntlCommands.SetOwn:
                return 0;
            case FcntlCommands.GetPipeSize:
            case FcntlCommands.SetPipeSize:
                return file is PipeEnd ? FileSystem.Pipe.Capacity : -Errno.EBADF;
            default:
                return -Errno.EINVAL;
        }
    }

    private static long Flock(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null || file.IsPathOnly) return -Errno.EBADF;
        int operation = a.Int(1) & ~4; // LOCK_NB
        return operation is 1 or 2 or 8 ? 0 : -Errno.EINVAL;
    }

    private static long ValidFdNoOp(LinuxProcess p, in SyscallArgs a) =>
        p.Files.Get(a.Int(0)) is { IsPathOnly: false } ? 0 : -Errno.EBADF;

    private static long Fadvise(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null || file.IsPathOnly) return -Errno.EBADF;
        if (file.Node is null) return -Errno.ESPIPE;
        return a.Int(3) is >= 0 and <= 5 && (long)a.A2 >= 0 ? 0 : -Errno.EINVAL;
    }

    private static long Ftruncate(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null || file.IsPathOnly) return -Errno.EBADF;
        if (file.Node is not { Kind: NodeKind.Regular } node || !file.CanWrite) return -Errno.EINVAL;
        return Truncate(p, node, (long)a.A1);
    }

    internal static long Truncate(LinuxProcess p, FsNode node, long length)
    {
        if (length < 0) return -Errno.EINVAL;
        long result = node.Data!.SetLength(length);
        if (result == 0) node.ModifyTime = node.ChangeTime = Now(p);
        return result;
    }

    private static long Fallocate(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null || !file.CanWrite) return -Errno.EBADF;
        long offset = (long)a.A2, length = (long)a.A3;
        if (offset < 0 || length <= 0) return -Errno.EINVAL;
        if (file.Node is null) return -Errno.ESPIPE;
        if (file.Node is not { Kind: NodeKind.Regular } node) return -Errno.ENODEV;
        int mode = a.Int(1);
        if (mode != 0 && mode != 1 /* FALLOC_FL_KEEP_SIZE */) return -Errno.EOPNOTSUPP;
        if (length > FileData.MaxSize || offset > FileData.MaxSize - length) return -Errno.EFBIG;
        if (mode == 0 && offset + length > node.Data!.Length) return Truncate(p, node, offset + length);
        return 0;
    }

    private static long Fchdir(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null) return -Errno.EBADF;
        if (file.Node is not { IsDirectory: true } node) return -Errno.ENOTDIR;
        p.Files.CurrentDirectory = node;
        return 0;
    }

    private static long Fchmod(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null || file.IsPathOnly) return -Errno.EBADF;
        if (file.Node is { } node) PathSyscalls.SetMode(p, node, (uint)a.A1);
        return 0;
    }

    private static long Fchown(LinuxProcess p, in SyscallArgs a)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null || file.IsPathOnly) return -Errno.EBADF;
        if (file.Node is { } node) PathSyscalls.SetOwner(p, node, a.Int(1), a.Int(2));
        return 0;
    }

    private static long Fstatfs(LinuxProcess p, in SyscallArgs a)
    {
        if (p.Files.Get(a.Int(0)) is null) return -Errno.EBADF;
        var st = MadeUpStatfs();
        return p.Memory.TryWrite(a.A1, in st) ? 0 : -Errno.EFAULT;
    }

    private static long Getdents64(LinuxProcess p, in SyscallArgs a) => Getdents(p, a, wide: true);

    private static long Getdents(LinuxProcess p, in SyscallArgs a) => Getdents(p, a, wide: false);

    /// <summary>
    /// getdents64 (linux_dirent64) and getdents (linux_dirent). Order: ".", "..", then entries in ordinal name order.
    /// The position continues after the last name returned, so entries removed or added meanwhile never make a
    /// listing skip or repeat the others (rm -r unlinks while it reads). d_off is the entry's index plus one.
    /// </summary>
    private static long Getdents(LinuxProcess p, in SyscallArgs a, bool wide)
    {
        var file = p.Files.Get(a.Int(0));
        if (file is null || file.IsPathOnly) return -Errno.EBADF;
        if (file is not NodeFile { FileNode.IsDirectory: true } directory) return -Errno.ENOTDIR;
        var node = directory.FileNode;
        if (node.Unlinked) return 0;
        int capacity = (int)Math.Min(a.A2, 1UL << 20);
        var entries = new List<(string Name, ulong Inode, byte Type)>
        {
            (".", node.Inode, DirentTypes.Directory),
            ("..", (node.Parent ?? node).Inode, DirentTypes.Directory),
        };
        foreach (var (name, child) in p.FileSystem.List(p, node)) entries.Add((name, child.Inode, child.DirentType));
        int index = (int)Math.Min(directory.Position, entries.Count);
        if (directory.DirectoryCursor is { } cursor)
        {
            index = 2;
            while (index < entries.Count && string.CompareOrdinal(entries[index].Name, cursor) <= 0) index++;
        }
        var output = new byte[capacity];
        int used = 0;
        for (; index < entries.Count; index++)
        {
            var (name, inode, type) = entries[index];
            byte[] nameBytes = VirtualFileSystem.GuestBytes(name);
            int header = wide ? 19 : 18;
            int length = (header + nameBytes.Length + (wide ? 1 : 2) + 7) & ~7;
            if (used + length > capacity)
            {
                if (used == 0) return -Errno.EINVAL;
                break;
            }
            var record = output.AsSpan(used, length);
            BitConverter.TryWriteBytes(record, inode);
            BitConverter.TryWriteBytes(record[8..], (long)index + 1);
            BitConverter.TryWriteBytes(record[16..], (ushort)length);
            if (wide)
            {
                record[18] = type;
                nameBytes.CopyTo(record[19..]);
            }
            else
            {
                nameBytes.CopyTo(record[18..]);
                record[^1] = type;
            }
            used += length;
            directory.Position = index + 1;
            directory.DirectoryCursor = index >= 2 ? name : null;
        }
        if (used > 0 && !p.Memory.TryWrite(a.A1, output.AsSpan(0, used))) return -Errno.EFAULT;
        return used;
    }

    private static long Sendfile(LinuxProcess p, in SyscallArgs a)
    {
        var output = Writable(p, a.Int(0));
        var input = Readable(p, a.Int(1));
        if (output is null || input is null) return -Errno.EBADF;
        if (input.Node is { IsDirectory: true }) return -Errno.EINVAL;
        long offset = -1;
        if (a.A2 != 0)
        {
            if (input.Node is null) return -Errno.ESPIPE;
            if (!p.Memory.TryRead(a.A2, out offset)) return -Errno.EFAULT;
            if (offset < 0) return -Errno.EINVAL;
        }
        long result = Copy(p, input, offset, output, -1, (long)Math.Min(a.A3, (ulong)MaxTransfer), out long endOffset);
        if (a.A2 != 0 && !p.Memory.TryWrite(a.A2, in endOffset)) return -Errno.EFAULT;
        return result;
    }

    private static long CopyFileRange(LinuxProcess p, in SyscallArgs a)
    {
        var input = Readable(p, a.Int(0));
        var output = Writable(p, a.Int(2));
        if (input is null || output is null) return -Errno.EBADF;
        if (a.Int(5) != 0) return -Errno.EINVAL;
        if (input.Node is not { Kind: NodeKind.Regular } || output.Node is not { Kind: NodeKind.Regular }) return -Errno.EINVAL;
        if ((output.Flags & OpenFlags.Append) != 0) return -Errno.EBADF;
        long inOffset = -1, outOffset = -1;
        if (a.A1 != 0 && !p.Memory.TryRead(a.A1, out inOffset)) return -Errno.EFAULT;
        if (a.A3 != 0 && !p.Memory.TryRead(a.A3, out outOffset)) return -Errno.EFAULT;
        if ((a.A1 != 0 && inOffset < 0) || (a.A3 != 0 && outOffset < 0)) return -Errno.EINVAL;
        long result = Copy(p, input, inOffset, output, outOffset, (long)Math.Min(a.A4, (ulong)MaxTransfer), out long inEnd);
        if (result > 0)
        {
            if (a.A1 != 0 && !p.Memory.TryWrite(a.A1, in inEnd)) return -Errno.EFAULT;
            long outEnd = outOffset + result;
            if (a.A3 != 0 && !p.Memory.TryWrite(a.A3, in outEnd)) return -Errno.EFAULT;
        }
        return result;
    }

    /// <summary>Moves up to count bytes in chunks; offsets of -1 use (and move) the file positions.</summary>
    private static long Copy(LinuxProcess p, OpenFile input, long inOffset, OpenFile output, long outOffset, long count, out long inEnd)
    {
        inEnd = inOffset;
        var chunk = new byte[(int)Math.Min(count, SendfileChunk)];
        long done = 0;
        while (done < count)
        {
            var span = chunk.AsSpan(0, (int)Math.Min(chunk.Length, count - done));
            long n = inOffset >= 0 ? input.PRead(span, inOffset + done) : input.Read(p, span);
            if (n <= 0)
            {
                if (n < 0 && done == 0) return n;
                break;
            }
            long written = outOffset >= 0 ? output.PWrite(p, span[..(int)n], outOffset + done) : output.Write(p, span[..(int)n]);
            if (written < 0)
            {
                if (done == 0) return written;
                break;
            }
            done += written;
            if (inOffset >= 0) inEnd = inOffset + done;
            if (written < n || n < span.Length) break;
        }
        return done;
    }

    private static long CloseRange(LinuxProcess p, in SyscallArgs a)
    {
        const int Unshare = 2, CloseOnExec = 4;
        uint first = (uint)a.A0, last = (uint)a.A1;
        int flags = a.Int(2);
        if ((flags & ~(Unshare | CloseOnExec)) != 0 || first > last) return -Errno.EINVAL;
        foreach (int fd in p.Files.OpenDescriptors().ToArray())
        {
            if ((uint)fd < first || (uint)fd > last) continue;
            if ((flags & CloseOnExec) != 0) p.Files.SetCloseOnExec(fd, true);
            else p.Files.Close(fd);
        }
        return 0;
    }
}
