using System.Text;
using P2PReplay.Linux.Abi;
using P2PReplay.Linux.Syscalls;

namespace P2PReplay.Tests.FileSystem;

public sealed class FileSyscallTests : FsTestBase
{
    [Fact]
    public void Create_write_read_back()
    {
        long fd = Open("/tmp/a.txt", O_RDWR | O_CREAT | O_EXCL, 0x1B6);
        Assert.Equal(3, fd);
        Assert.Equal(5, Write(fd, "hello"));
        Assert.Equal(0, Guest.Call(8, fd, 0, 0)); // lseek SET 0
        Assert.Equal("hello", ReadAll(fd));
        Assert.Equal(0, Guest.Call(3, fd));
        Assert.Equal("hello", ReadFile("/tmp/a.txt"));
        Assert.Equal(Err(Errno.EEXIST), Open("/tmp/a.txt", O_RDWR | O_CREAT | O_EXCL));
        Assert.Equal(0, Stat("/tmp/a.txt", out var st));
        Assert.Equal(0x81A4u, st.Mode); // 0666 & ~022
        Assert.Equal(5, st.Size);
        Assert.Equal(1000u, st.Uid);
        Assert.Equal(Guest.Host.Realtime / 1_000_000_000, st.MtimeSec);
    }

    [Fact]
    public void Pread_pwrite_and_lseek()
    {
        long fd = Open("/tmp/p", O_RDWR | O_CREAT);
        Assert.Equal(10, Write(fd, "0123456789"));
        ulong buffer = Guest.Alloc(16);
        Assert.Equal(3, Guest.Call(17, fd, (long)buffer, 3, 4));
        Assert.Equal("456", Encoding.ASCII.GetString(Guest.Bytes(buffer, 3)));
        Assert.Equal(10, Guest.Call(8, fd, 0, SeekWhence.Current)); // pread did not move the position
        Assert.Equal(2, Guest.Call(18, fd, (long)Guest.Put("AB"u8), 2, 12)); // pwrite past the end leaves a hole
        Assert.Equal(14, Guest.Call(8, fd, 0, SeekWhence.End));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(8, fd, -100, SeekWhence.Set));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(17, fd, (long)buffer, 3, -1));
        Assert.Equal(0, Guest.Call(8, fd, 0, SeekWhence.Set));
        Assert.Equal("0123456789\0\0AB", ReadAll(fd));
        Assert.Equal(Err(Errno.ENXIO), Guest.Call(8, fd, 20, SeekWhence.Data));
    }

    [Fact]
    public void Append_writes_at_the_end()
    {
        WriteFile("/tmp/log", "one\n");
        long fd = Open("/tmp/log", O_WRONLY | O_APPEND);
        Guest.Call(8, fd, 0, SeekWhence.Set);
        Assert.Equal(4, Write(fd, "two\n"));
        Guest.Call(3, fd);
        Assert.Equal("one\ntwo\n", ReadFile("/tmp/log"));
        Assert.Equal(0x8401L, Guest.Call(72, Open("/tmp/log", O_WRONLY | O_APPEND), FcntlCommands.GetFl) & 0xFFFF);
    }

    [Fact]
    public void Truncate_and_ftruncate()
    {
        WriteFile("/tmp/t", "abcdef");
        Assert.Equal(0, Guest.Call(76, (long)Guest.Str("/tmp/t"), 3));
        Assert.Equal("abc", ReadFile("/tmp/t"));
        long fd = Open("/tmp/t", O_RDWR);
        Assert.Equal(0, Guest.Call(77, fd, 5));
        Assert.Equal("abc\0\0", ReadAll(fd));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(77, fd, -1));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(77, Open("/tmp/t", O_RDONLY), 1));
        Assert.Equal(Err(Errno.EISDIR), Guest.Call(76, (long)Guest.Str("/tmp"), 0));
        WriteFile("/tmp/t", "x"); // O_TRUNC
        Assert.Equal("x", ReadFile("/tmp/t"));
    }

    [Fact]
    public void Access_mode_checks_on_descriptors()
    {
        WriteFile("/tmp/r", "data");
        long ro = Open("/tmp/r", O_RDONLY);
        Assert.Equal(Err(Errno.EBADF), Write(ro, "x"));
        long wo = Open("/tmp/r", O_WRONLY);
        Assert.Equal(Err(Errno.EBADF), Guest.Call(0, wo, (long)Guest.Alloc(4), 4));
        Assert.Equal(Err(Errno.EBADF), Write(99, "x"));
        Assert.Equal(Err(Errno.EBADF), Write(-1, "x"));
        Assert.Equal(Err(Errno.EBADF), Guest.Call(3, 99));
        long dir = Open("/tmp", O_RDONLY);
        Assert.Equal(Err(Errno.EISDIR), Guest.Call(0, dir, (long)Guest.Alloc(4), 4));
        Assert.Equal(Err(Errno.EISDIR), Open("/tmp", O_WRONLY));
        Assert.Equal(Err(Errno.ENOTDIR), Open("/tmp/r", O_RDONLY | O_DIRECTORY));
        long path = Open("/tmp/r", O_PATH);
        Assert.Equal(Err(Errno.EBADF), Guest.Call(0, path, (long)Guest.Alloc(4), 4));
        ulong st = Guest.Alloc(144);
        Assert.Equal(0, Guest.Call(5, path, (long)st));
        Assert.Equal(4, Guest.Read<LinuxStat>(st).Size);
    }

    [Fact]
    public void Standard_streams_are_made_up_fifos()
    {
        var guest = Guest;
        Assert.Equal(6, Write(1, "hello\n"));
        Assert.Equal(3, Write(2, "err"));
        Assert.Equal("hello\n", guest.Host.StdoutText);
        Assert.Equal("err", guest.Host.StderrText);
        ulong st = Guest.Alloc(144);
        Assert.Equal(0, Guest.Call(5, 1, (long)st));
        var stat = Guest.Read<LinuxStat>(st);
        Assert.Equal(FileModes.Fifo | 0x180, stat.Mode);
        Assert.Equal(0, stat.Size);
        Assert.Equal(Err(Errno.ENOTTY), Guest.Call(16, 1, IoctlRequests.TcGets, (long)Guest.Alloc(64)));
        Assert.Equal(Err(Errno.ENOTTY), Guest.Call(16, 0, IoctlRequests.TiocGWinSz, (long)Guest.Alloc(8)));
        Assert.Equal(Err(Errno.ESPIPE), Guest.Call(8, 1, 0, 0));
        Assert.Equal(0, Guest.Call(3, 1));
        Assert.Equal(Err(Errno.EBADF), Write(1, "x"));
        // dup2 of a stream keeps writing to the host stream.
        Assert.Equal(1, Guest.Call(33, 2, 1));
        Assert.Equal(1, Write(1, "!"));
        Assert.Equal("err!", guest.Host.StderrText);
    }

    [Fact]
    public void Stdin_reads_the_host_input()
    {
        var guest = new Fakes.TestGuest(host: new Fakes.FakeHost(Encoding.ASCII.GetBytes("input")));
        Guest.Dispose();
        Guest = guest;
        Assert.Equal("input", ReadAll(0));
    }

    [Fact]
    public void Dup_fcntl_and_cloexec()
    {
        long fd = Open("/tmp/d", O_RDWR | O_CREAT | O_CLOEXEC);
        Assert.Equal(1, Guest.Call(72, fd, FcntlCommands.GetFd));
        long copy = Guest.Call(32, fd);
        Assert.Equal(fd + 1, copy);
        Assert.Equal(0, Guest.Call(72, copy, FcntlCommands.GetFd));
        Write(fd, "abc");
        Assert.Equal(3, Guest.Call(8, copy, 0, SeekWhence.Current)); // shared position
        Assert.Equal(10, Guest.Call(72, fd, FcntlCommands.DupFd, 10));
        Assert.Equal(11, Guest.Call(72, fd, FcntlCommands.DupFdCloseOnExec, 10));
        Assert.Equal(1, Guest.Call(72, 11, FcntlCommands.GetFd));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(292, fd, fd, 0));
        Assert.Equal(20, Guest.Call(292, fd, 20, O_CLOEXEC));
        Assert.Equal(0, Guest.Call(72, fd, FcntlCommands.SetLk, (long)Guest.Alloc(32)));
        ulong flock = Guest.Alloc(32);
        Assert.Equal(0, Guest.Call(72, fd, FcntlCommands.GetLk, (long)flock));
        Assert.Equal(FcntlCommands.Unlock, Guest.Read<short>(flock));
        Assert.Equal(0, Guest.Call(73, fd, 2));
        Assert.Equal(0, Guest.Call(74, fd));
        Assert.Equal(0, Guest.Call(436, 10, 20, 0));
        Assert.Equal(Err(Errno.EBADF), Guest.Call(3, 10));
        Assert.Equal(Err(Errno.EBADF), Guest.Call(3, 20));
    }

    [Fact]
    public void Readv_and_writev()
    {
        long fd = Open("/tmp/v", O_RDWR | O_CREAT);
        ulong iov = Guest.Alloc(32);
        var a = Guest.Put("abc"u8);
        var b = Guest.Put("defg"u8);
        Guest.Memory.TryWrite(iov, new IoVec { Base = a, Length = 3 });
        Guest.Memory.TryWrite(iov + 16, new IoVec { Base = b, Length = 4 });
        Assert.Equal(7, Guest.Call(20, fd, (long)iov, 2));
        Guest.Call(8, fd, 0, 0);
        ulong x = Guest.Alloc(2), y = Guest.Alloc(10);
        Guest.Memory.TryWrite(iov, new IoVec { Base = x, Length = 2 });
        Guest.Memory.TryWrite(iov + 16, new IoVec { Base = y, Length = 10 });
        Assert.Equal(7, Guest.Call(19, fd, (long)iov, 2));
        Assert.Equal("ab", Encoding.ASCII.GetString(Guest.Bytes(x, 2)));
        Assert.Equal("cdefg", Encoding.ASCII.GetString(Guest.Bytes(y, 5)));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(19, fd, (long)iov, -1));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(19, fd, (long)iov, 5000));
        Assert.Equal(Err(Errno.EFAULT), Guest.Call(19, fd, 0x10, 2));
    }

    [Fact]
    public void Bad_pointers_and_lengths()
    {
        long fd = Open("/tmp/f", O_RDWR | O_CREAT);
        Write(fd, "0123456789");
        Guest.Call(8, fd, 0, 0);
        Assert.Equal(Err(Errno.EFAULT), Guest.Call(0, fd, 0, 10));
        Assert.Equal(Err(Errno.EFAULT), Guest.Call(1, fd, 0xdead0000, 10));
        Assert.Equal(Err(Errno.EFAULT), Guest.Call(1, fd, -4096, 10));
        Assert.Equal(Err(Errno.EFAULT), Open2(0));
        Assert.Equal(Err(Errno.EFAULT), Guest.Call(4, (long)Guest.Str("/tmp/f"), 0x20));
        // A huge or "negative" length reads only what exists into the mapped part of the buffer.
        ulong end = Fakes.TestGuest.ScratchStart + Fakes.TestGuest.ScratchSize;
        Assert.Equal(4, Guest.Call(0, fd, (long)(end - 4), -1));
        Assert.Equal(6, Guest.Call(0, fd, (long)Guest.Alloc(16), long.MaxValue));
        Assert.Equal(0, Guest.Call(0, fd, (long)Guest.Alloc(16), 0));
        Assert.Equal(0, Guest.Call(1, fd, 0, 0));
        Assert.Equal(Err(Errno.EFBIG), Guest.Call(18, fd, (long)Guest.Alloc(4), 4, 1L << 40));
        // Path too long.
        Assert.Equal(Err(Errno.ENAMETOOLONG), Open("/tmp/" + new string('a', 5000), O_RDONLY));
        Assert.Equal(Err(Errno.ENAMETOOLONG), Open("/tmp/" + new string('a', 300), O_RDONLY | O_CREAT));
        Assert.Equal(Err(Errno.ENOENT), Open("", O_RDONLY));

        long Open2(long pointer) => Guest.Call(257, AT_FDCWD, pointer, O_RDONLY, 0);
    }

    [Fact]
    public void Pipes_carry_bytes_and_report_end_of_file()
    {
        ulong fds = Guest.Alloc(8);
        Assert.Equal(0, Guest.Call(22, (long)fds));
        int r = Guest.Read<int>(fds), w = Guest.Read<int>(fds + 4);
        Assert.Equal((3, 4), (r, w));
        // A here-document larger than the 64 KiB capacity still fits (a blocking write cannot wait in one process).
        string doc = string.Concat(Enumerable.Repeat("line of a here-document\n", 5000));
        Assert.Equal(doc.Length, Write(w, doc));
        ulong st = Guest.Alloc(144);
        Assert.Equal(0, Guest.Call(5, r, (long)st));
        Assert.Equal(FileModes.Fifo | 0x180, Guest.Read<LinuxStat>(st).Mode);
        ulong avail = Guest.Alloc(4);
        Assert.Equal(0, Guest.Call(16, r, IoctlRequests.FionRead, (long)avail));
        Assert.Equal(doc.Length, Guest.Read<int>(avail));
        Assert.Equal(0, Guest.Call(3, w));
        Assert.Equal(doc, ReadAll(r));
        Assert.Equal(Err(Errno.ESPIPE), Guest.Call(8, r, 0, 0));
        Assert.Equal(Err(Errno.EBADF), Write(r, "x"));
        // Writing with no reader: EPIPE.
        Assert.Equal(0, Guest.Call(293, (long)fds, O_NONBLOCK | O_CLOEXEC));
        r = Guest.Read<int>(fds);
        w = Guest.Read<int>(fds + 4);
        Assert.Equal(1, Guest.Call(72, r, FcntlCommands.GetFd));
        Assert.Equal(Err(Errno.EAGAIN), Guest.Call(0, r, (long)Guest.Alloc(4), 4)); // empty, writer open, non-blocking
        Assert.Equal(65536, Write(w, new string('x', 70000))); // non-blocking obeys the capacity
        Assert.Equal(Err(Errno.EAGAIN), Write(w, "y"));
        Guest.Call(3, r);
        Assert.Equal(Err(Errno.EPIPE), Write(w, "x"));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(293, (long)fds, 0x1));
        Assert.Equal(Err(Errno.EFAULT), Guest.Call(22, 0x10));
    }

    [Fact]
    public void Blocking_read_of_an_empty_pipe_with_a_writer_gives_eof_and_a_notice()
    {
        ulong fds = Guest.Alloc(8);
        Guest.Call(22, (long)fds);
        Assert.Equal(0, Guest.Call(0, Guest.Read<int>(fds), (long)Guest.Alloc(4), 4));
        Assert.Single(Guest.Notices);
    }

    [Fact]
    public void Sendfile_and_copy_file_range()
    {
        WriteFile("/tmp/src", "sendfile body");
        long src = Open("/tmp/src", O_RDONLY);
        Assert.Equal(13, Guest.Call(40, 1, src, 0, 100));
        Assert.Equal("sendfile body", Guest.Host.StdoutText);
        ulong offset = Guest.Alloc(8);
        Guest.Memory.TryWrite(offset, 9L);
        long dst = Open("/tmp/dst", O_WRONLY | O_CREAT);
        Assert.Equal(4, Guest.Call(40, dst, src, (long)offset, 100));
        Assert.Equal(13L, Guest.Read<long>(offset));
        Assert.Equal("body", ReadFile("/tmp/dst"));
        long copyIn = Open("/tmp/src", O_RDONLY), copyOut = Open("/tmp/cfr", O_WRONLY | O_CREAT);
        Assert.Equal(8, Guest.Call(326, copyIn, 0, copyOut, 0, 8, 0));
        Assert.Equal("sendfile", ReadFile("/tmp/cfr"));
    }

    [Fact]
    public void Devices()
    {
        Assert.Equal(5, Write(Open("/dev/null", O_WRONLY), "abcde"));
        Assert.Equal("", ReadFile("/dev/null"));
        long zero = Open("/dev/zero", O_RDONLY);
        ulong buffer = Guest.Put("xxxx"u8);
        Assert.Equal(4, Guest.Call(0, zero, (long)buffer, 4));
        Assert.Equal(new byte[4], Guest.Bytes(buffer, 4));
        long random = Open("/dev/urandom", O_RDONLY);
        ulong r1 = Guest.Alloc(32);
        Assert.Equal(32, Guest.Call(0, random, (long)r1, 32));
        var expected = new byte[32];
        new Fakes.FakeHost().GetRandomBytes(expected);
        Assert.Equal(expected, Guest.Bytes(r1, 32)); // from the host's (logged) random source
        Assert.True(Open("/dev/random", O_RDONLY) >= 0);
        Assert.Equal(0, Stat("/dev/null", out var st));
        Assert.Equal(FileModes.CharDevice | 0x1B6, st.Mode);
        Assert.Equal(0x103UL, st.Rdev);
        Assert.Equal(0, st.MtimeSec);
        // /dev/stdout is the process's fd 1.
        long stdout = Open("/dev/stdout", O_WRONLY);
        Assert.Equal(3, Write(stdout, "via"));
        Assert.Equal("via", Guest.Host.StdoutText);
        Assert.Equal(0, Stat("/dev/stdin", out st));
        Assert.Equal(FileModes.Fifo | 0x180, st.Mode);
    }

    [Fact]
    public void Proc_self_exe_and_fd()
    {
        var guest = new Fakes.TestGuest(extraFiles: new Dictionary<string, byte[]> { ["/bin/busybox"] = Encoding.ASCII.GetBytes("ELFDATA") },
            executablePath: "/bin/busybox");
        Guest.Dispose();
        Guest = guest;
        ulong buffer = Guest.Alloc(256);
        long n = Guest.Call(89, (long)Guest.Str("/proc/self/exe"), (long)buffer, 256);
        Assert.Equal("/bin/busybox", Encoding.ASCII.GetString(Guest.Bytes(buffer, (int)n)));
        Assert.Equal("ELFDATA", ReadFile("/proc/self/exe"));
        long fd = Open("/bin/busybox", O_RDONLY);
        n = Guest.Call(89, (long)Guest.Str($"/proc/self/fd/{fd}"), (long)buffer, 256);
        Assert.Equal("/bin/busybox", Encoding.ASCII.GetString(Guest.Bytes(buffer, (int)n)));
        n = Guest.Call(89, (long)Guest.Str("/proc/self/fd/1"), (long)buffer, 256);
        Assert.StartsWith("pipe:[", Encoding.ASCII.GetString(Guest.Bytes(buffer, (int)n)));
        Assert.Equal(Err(Errno.ENOENT), Guest.Call(89, (long)Guest.Str("/proc/self/fd/77"), (long)buffer, 256));
        Assert.Equal(["0", "1", "2", "3"], ListDirectory("/proc/self/fd").Skip(2).Take(4).Where(x => x != "4").ToList());
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(89, (long)Guest.Str("/bin/busybox"), (long)buffer, 256));
    }

    [Fact]
    public void Syscall_rows_are_described_for_the_tracer()
    {
        Assert.Equal("openat", SyscallTable.ByNumber[257].Name);
        Assert.Equal([ArgKind.DirFd, ArgKind.Path, ArgKind.Hex, ArgKind.Octal], SyscallTable.ByNumber[257].Args);
        Assert.Equal([ArgKind.Fd, ArgKind.InBuffer, ArgKind.Size], SyscallTable.ByNumber[1].Args);
        Assert.Equal([ArgKind.Fd, ArgKind.OutBuffer, ArgKind.Size], SyscallTable.ByNumber[0].Args);
        var output = new StringWriter();
        var tracer = new SyscallTracer(output);
        var args = new SyscallArgs(257, unchecked((ulong)AT_FDCWD), Guest.Str("/etc/busybox.conf"), 0, 0, 0, 0);
        long result = SyscallTable.ByNumber[257].Handler(Guest.Process, args);
        tracer.Trace(Guest.Process, SyscallTable.ByNumber[257], args, result);
        Assert.StartsWith("openat(AT_FDCWD, \"/etc/busybox.conf\", 0x0, 0", output.ToString());
        Assert.EndsWith(") = -1 ENOENT", output.ToString().Trim());
    }
}
