using System.Text;
using P2PReplay.Linux.Abi;

namespace P2PReplay.Tests.FileSystem;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class PathSyscallTests : FsTestBase
{
    private string MakeImage()
    {
        string image = TempImage();
        Directory.CreateDirectory(Path.Combine(image, "etc"));
        Directory.CreateDirectory(Path.Combine(image, "bin"));
        Directory.CreateDirectory(Path.Combine(image, "data", "sub"));
        File.WriteAllText(Path.Combine(image, "etc", "passwd"), "root:x:0:0\n");
        File.WriteAllText(Path.Combine(image, "etc", "hostname"), "image\n");
        File.WriteAllText(Path.Combine(image, "data", "b"), "B");
        File.WriteAllText(Path.Combine(image, "data", "a"), "A");
        File.WriteAllText(Path.Combine(image, "data", ".hidden"), "H");
        File.WriteAllText(Path.Combine(image, "bin", "tool"), "#!tool");
        File.SetUnixFileMode(Path.Combine(image, "bin", "tool"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.CreateSymbolicLink(Path.Combine(image, "data", "link-to-passwd"), "/etc/passwd");
        File.CreateSymbolicLink(Path.Combine(image, "data", "up"), "../../../../../etc/hostname");
        return image;
    }

    private static string Snapshot(string root) => string.Join("\n",
        Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(p => p + ":" + (File.Exists(p) && new FileInfo(p).LinkTarget is null ? File.ReadAllText(p) : "")));

    [Fact]
    public void Image_files_are_read_and_never_written()
    {
        string image = MakeImage();
        string before = Snapshot(image);
        NewGuest(image);
        Assert.Equal("root:x:0:0\n", ReadFile("/etc/passwd"));
        // Copy-up on write, unlink (whiteout), rename, mkdir, chmod, utimensat, truncate: none reach the host.
        WriteFile("/etc/hostname", "guest\n");
        Assert.Equal("guest\n", ReadFile("/etc/hostname"));
        long fd = Open("/etc/passwd", O_WRONLY | O_APPEND);
        Assert.Equal(6, Write(fd, "user\n\n"));
        Assert.Equal("root:x:0:0\nuser\n\n", ReadFile("/etc/passwd"));
        Assert.Equal(0, Guest.Call(87, (long)Guest.Str("/data/a")));
        Assert.Equal(Err(Errno.ENOENT), Open("/data/a", O_RDONLY));
        Assert.Equal(0, Guest.Call(82, (long)Guest.Str("/data/b"), (long)Guest.Str("/data/c")));
        Assert.Equal(0, Guest.Call(83, (long)Guest.Str("/data/new"), 0x1ED));
        Assert.Equal(0, Guest.Call(90, (long)Guest.Str("/bin/tool"), 0));
        Assert.Equal(0, Guest.Call(280, AT_FDCWD, (long)Guest.Str("/etc/passwd"), 0, 0));
        Assert.Equal(0, Guest.Call(76, (long)Guest.Str("/bin/tool"), 0));
        Assert.Equal(0, Guest.Call(84, (long)Guest.Str("/data/sub")));
        Assert.Equal([".", "..", ".hidden", "c", "link-to-passwd", "new", "up"], ListDirectory("/data").Order(StringComparer.Ordinal).ToList());
        Assert.Equal(before, Snapshot(image));
        // A fresh VM over the same image sees the original contents.
        NewGuest(image);
        Assert.Equal("image\n", ReadFile("/etc/hostname"));
        Assert.Equal("A", ReadFile("/data/a"));
    }

    [Fact]
    public void Listing_merges_image_and_layer_sorted_with_dot_entries_first()
    {
        NewGuest(MakeImage());
        WriteFile("/data/Z", "z");
        WriteFile("/data/aa", "aa");
        Assert.Equal(0, Guest.Call(87, (long)Guest.Str("/data/b")));
        Assert.Equal([".", "..", ".hidden", "Z", "a", "aa", "link-to-passwd", "sub", "up"], ListDirectory("/data"));
        // Tiny buffers page through the same order; a buffer too small for one entry is EINVAL.
        Assert.Equal([".", "..", ".hidden", "Z", "a", "aa", "link-to-passwd", "sub", "up"], ListDirectory("/data", 40));
        long fd = Open("/data", O_RDONLY | O_DIRECTORY);
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(217, fd, (long)Guest.Alloc(8), 8));
        Assert.Equal(Err(Errno.ENOTDIR), Guest.Call(217, Open("/data/a", O_RDONLY), (long)Guest.Alloc(512), 512));
        Assert.Contains("dev", ListDirectory("/"));
        Assert.Contains("tmp", ListDirectory("/"));
    }

    [Fact]
    public void Listing_while_unlinking_neither_skips_nor_repeats()
    {
        for (int i = 0; i < 50; i++) WriteFile($"/tmp/f{i:D2}", "x");
        long fd = Open("/tmp", O_RDONLY | O_DIRECTORY);
        ulong buffer = Guest.Alloc(64);
        var seen = new List<string>();
        while (true)
        {
            long n = Guest.Call(217, fd, (long)buffer, 64);
            Assert.True(n >= 0);
            if (n == 0) break;
            var bytes = Guest.Bytes(buffer, (int)n);
            for (int offset = 0; offset < n; offset += BitConverter.ToUInt16(bytes, offset + 16))
            {
                int end = Array.IndexOf(bytes, (byte)0, offset + 19);
                string name = Encoding.ASCII.GetString(bytes, offset + 19, end - offset - 19);
                seen.Add(name);
                if (name.StartsWith('f')) Assert.Equal(0, Guest.Call(87, (long)Guest.Str("/tmp/" + name)));
            }
        }
        Assert.Equal(52, seen.Count);
        Assert.Equal([".", ".."], ListDirectory("/tmp"));
    }

    [Fact]
    public void Stat_data_is_made_up_and_deterministic()
    {
        string image = MakeImage();
        var results = new List<string>();
        for (int run = 0; run < 2; run++)
        {
            NewGuest(image);
            var lines = new List<string>();
            foreach (var path in new[] { "/", "/etc/passwd", "/data", "/data/sub", "/bin/tool", "/dev/null", "/tmp" })
            {
                Assert.Equal(0, Stat(path, out var st));
                lines.Add($"{path} dev={st.Dev} ino={st.Ino} nlink={st.Nlink} mode={st.Mode:x} uid={st.Uid} gid={st.Gid} size={st.Size} " +
                    $"blk={st.BlockSize}/{st.Blocks} t={st.AtimeSec},{st.MtimeSec},{st.CtimeSec}");
            }
            results.Add(string.Join("\n", lines));
        }
        Assert.Equal(results[0], results[1]);
        NewGuest(image);
        Assert.Equal(0, Stat("/etc/passwd", out var passwd));
        Assert.Equal(0, passwd.MtimeSec);
        Assert.Equal(0, passwd.AtimeSec);
        Assert.Equal(11, passwd.Size);
        Assert.Equal(1, passwd.Blocks);
        Assert.Equal(4096, passwd.BlockSize);
        Assert.Equal(1000u, passwd.Uid);
        Assert.Equal(FileModes.Regular, passwd.Mode & FileModes.TypeMask);
        Assert.Equal(0, Stat("/bin/tool", out var tool));
        Assert.Equal(FileModes.Regular | 0x1C0, tool.Mode);
        Assert.Equal(0, Stat("/data", out var data));
        Assert.Equal(3UL, data.Nlink);
        Assert.Equal(0, Stat("/data/link-to-passwd", out var link, follow: false));
        Assert.Equal(FileModes.Symlink | 0x1FF, link.Mode);
        Assert.Equal("/etc/passwd".Length, link.Size);
        // statx agrees with stat.
        ulong stx = Guest.Alloc(256);
        Assert.Equal(0, Guest.Call(332, AT_FDCWD, (long)Guest.Str("/etc/passwd"), 0, 0x7ff, (long)stx));
        var x = Guest.Read<LinuxStatx>(stx);
        Assert.Equal(passwd.Ino, x.Ino);
        Assert.Equal((ulong)passwd.Size, x.Size);
        Assert.Equal((ushort)passwd.Mode, x.Mode);
        Assert.Equal(LinuxStatx.BasicStats, x.Mask);
        // newfstatat with AT_EMPTY_PATH stats the descriptor.
        long fd = Open("/etc/passwd", O_RDONLY);
        ulong st2 = Guest.Alloc(144);
        Assert.Equal(0, Guest.Call(262, fd, (long)Guest.Str(""), (long)st2, AtFlags.EmptyPath));
        Assert.Equal(passwd.Ino, Guest.Read<LinuxStat>(st2).Ino);
        Assert.Equal(Err(Errno.ENOENT), Guest.Call(262, fd, (long)Guest.Str(""), (long)st2, 0));
    }

    [Fact]
    public void Paths_cannot_escape_the_image()
    {
        string outer = TempImage();
        string image = Path.Combine(outer, "root");
        Directory.CreateDirectory(Path.Combine(image, "etc"));
        File.WriteAllText(Path.Combine(image, "etc", "passwd"), "inside");
        File.WriteAllText(Path.Combine(outer, "secret"), "outside");
        File.CreateSymbolicLink(Path.Combine(image, "abs"), "/etc/passwd");
        File.CreateSymbolicLink(Path.Combine(image, "rel"), "../secret");
        File.CreateSymbolicLink(Path.Combine(image, "hostdir"), outer);
        NewGuest(image);
        Assert.Equal("inside", ReadFile("/../../etc/passwd"));
        Assert.Equal("inside", ReadFile("/etc/../../../etc/passwd"));
        Assert.Equal("inside", ReadFile("/abs"));
        Assert.Equal(Err(Errno.ENOENT), Open("/rel", O_RDONLY));
        Assert.Equal(Err(Errno.ENOENT), Open("/hostdir/secret", O_RDONLY));
        Assert.Equal(0, Guest.Call(80, (long)Guest.Str("/etc")));
        Assert.Equal("inside", ReadFile("../../../etc/passwd"));
        Assert.Equal("inside", ReadFile("passwd"));
        // Symlink loops end in ELOOP.
        Assert.Equal(0, Guest.Call(88, (long)Guest.Str("/tmp/l2"), (long)Guest.Str("/tmp/l1")));
        Assert.Equal(0, Guest.Call(88, (long)Guest.Str("/tmp/l1"), (long)Guest.Str("/tmp/l2")));
        Assert.Equal(Err(Errno.ELOOP), Open("/tmp/l1", O_RDONLY));
        Assert.Equal(Err(Errno.ELOOP), Open("/abs", O_RDONLY | O_NOFOLLOW));
        Assert.True(Open("/abs", O_PATH | O_NOFOLLOW) >= 0);
    }

    [Fact]
    public void Mkdir_rmdir_and_not_empty()
    {
        Assert.Equal(0, Guest.Call(83, (long)Guest.Str("/tmp/d"), 0x1FF));
        Assert.Equal(Err(Errno.EEXIST), Guest.Call(83, (long)Guest.Str("/tmp/d"), 0x1FF));
        Assert.Equal(Err(Errno.ENOENT), Guest.Call(83, (long)Guest.Str("/tmp/x/y"), 0x1FF));
        Assert.Equal(0, Stat("/tmp/d", out var st));
        Assert.Equal(FileModes.Directory | 0x1ED, st.Mode); // umask 022
        WriteFile("/tmp/d/f", "x");
        Assert.Equal(Err(Errno.ENOTDIR), Guest.Call(83, (long)Guest.Str("/tmp/d/f/g"), 0x1FF));
        Assert.Equal(Err(Errno.ENOTEMPTY), Guest.Call(84, (long)Guest.Str("/tmp/d")));
        Assert.Equal(Err(Errno.ENOTDIR), Guest.Call(84, (long)Guest.Str("/tmp/d/f")));
        Assert.Equal(Err(Errno.EISDIR), Guest.Call(87, (long)Guest.Str("/tmp/d")));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(84, (long)Guest.Str("/tmp/d/.")));
        Assert.Equal(0, Guest.Call(263, AT_FDCWD, (long)Guest.Str("/tmp/d/f"), 0));
        Assert.Equal(0, Guest.Call(263, AT_FDCWD, (long)Guest.Str("/tmp/d"), AtFlags.RemoveDir));
        Assert.Equal(Err(Errno.ENOENT), Stat("/tmp/d", out _));
        Assert.Equal(0, Guest.Call(258, AT_FDCWD, (long)Guest.Str("/tmp/trailing/"), 0x1FF));
        Assert.Equal(Err(Errno.ENOTDIR), Open("/dev/null/", O_RDONLY));
    }

    [Fact]
    public void Rename_over_existing_and_errors()
    {
        WriteFile("/tmp/a", "A");
        WriteFile("/tmp/b", "B");
        Assert.Equal(0, Guest.Call(82, (long)Guest.Str("/tmp/a"), (long)Guest.Str("/tmp/b")));
        Assert.Equal("A", ReadFile("/tmp/b"));
        Assert.Equal(Err(Errno.ENOENT), Open("/tmp/a", O_RDONLY));
        WriteFile("/tmp/c", "C");
        Assert.Equal(Err(Errno.EEXIST), Guest.Call(316, AT_FDCWD, (long)Guest.Str("/tmp/c"), AT_FDCWD, (long)Guest.Str("/tmp/b"), 1));
        Assert.Equal(0, Guest.Call(316, AT_FDCWD, (long)Guest.Str("/tmp/c"), AT_FDCWD, (long)Guest.Str("/tmp/d"), 1));
        Guest.Call(83, (long)Guest.Str("/tmp/dir"), 0x1FF);
        Guest.Call(83, (long)Guest.Str("/tmp/dir/inner"), 0x1FF);
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(82, (long)Guest.Str("/tmp/dir"), (long)Guest.Str("/tmp/dir/inner/x")));
        Assert.Equal(Err(Errno.EISDIR), Guest.Call(82, (long)Guest.Str("/tmp/b"), (long)Guest.Str("/tmp/dir")));
        Assert.Equal(Err(Errno.ENOTDIR), Guest.Call(82, (long)Guest.Str("/tmp/dir"), (long)Guest.Str("/tmp/b")));
        Assert.Equal(Err(Errno.ENOENT), Guest.Call(82, (long)Guest.Str("/tmp/none"), (long)Guest.Str("/tmp/x")));
        // Renaming a directory moves its subtree, and getcwd follows.
        Assert.Equal(0, Guest.Call(80, (long)Guest.Str("/tmp/dir/inner")));
        Assert.Equal(0, Guest.Call(82, (long)Guest.Str("/tmp/dir"), (long)Guest.Str("/tmp/moved")));
        ulong buffer = Guest.Alloc(64);
        Assert.Equal(17, Guest.Call(79, (long)buffer, 64));
        Assert.Equal("/tmp/moved/inner\0", Encoding.ASCII.GetString(Guest.Bytes(buffer, 17)));
        Assert.Equal(Err(Errno.ERANGE), Guest.Call(79, (long)buffer, 5));
    }

    [Fact]
    public void Links_symlinks_access_chmod_utimens_umask()
    {
        WriteFile("/tmp/f", "data");
        Assert.Equal(0, Guest.Call(86, (long)Guest.Str("/tmp/f"), (long)Guest.Str("/tmp/hard")));
        Assert.Equal(0, Stat("/tmp/f", out var st));
        Assert.Equal(2UL, st.Nlink);
        Assert.Equal(0, Guest.Call(87, (long)Guest.Str("/tmp/f")));
        Assert.Equal("data", ReadFile("/tmp/hard"));
        Assert.Equal(0, Guest.Call(266, (long)Guest.Str("hard"), AT_FDCWD, (long)Guest.Str("/tmp/sym")));
        Assert.Equal("data", ReadFile("/tmp/sym"));
        ulong buffer = Guest.Alloc(16);
        Assert.Equal(2, Guest.Call(267, AT_FDCWD, (long)Guest.Str("/tmp/sym"), (long)buffer, 2));
        Assert.Equal("ha", Encoding.ASCII.GetString(Guest.Bytes(buffer, 2)));
        Assert.Equal(Err(Errno.EEXIST), Guest.Call(88, (long)Guest.Str("x"), (long)Guest.Str("/tmp/sym")));
        // O_CREAT through a dangling symlink creates its target.
        Assert.Equal(0, Guest.Call(88, (long)Guest.Str("/tmp/target"), (long)Guest.Str("/tmp/dangling")));
        Assert.True(Open("/tmp/dangling", O_WRONLY | O_CREAT) >= 0);
        Assert.Equal(0, Stat("/tmp/target", out _));
        Assert.Equal(Err(Errno.EEXIST), Open("/tmp/dangling", O_WRONLY | O_CREAT | O_EXCL));
        // access and chmod.
        Assert.Equal(0, Guest.Call(21, (long)Guest.Str("/tmp/hard"), 6));
        Assert.Equal(Err(Errno.EACCES), Guest.Call(21, (long)Guest.Str("/tmp/hard"), 1));
        Assert.Equal(0, Guest.Call(90, (long)Guest.Str("/tmp/hard"), 0x1ED));
        Assert.Equal(0, Guest.Call(269, AT_FDCWD, (long)Guest.Str("/tmp/hard"), 1));
        Assert.Equal(Err(Errno.ENOENT), Guest.Call(21, (long)Guest.Str("/tmp/none"), 0));
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(21, (long)Guest.Str("/tmp/hard"), 8));
        Assert.Equal(0, Guest.Call(439, AT_FDCWD, (long)Guest.Str("/tmp/hard"), 4, AtFlags.EAccess));
        // utimensat with explicit times and UTIME_OMIT.
        ulong times = Guest.Alloc(32);
        Guest.Memory.TryWrite(times, new Timespec { Sec = 100, Nsec = 5 });
        Guest.Memory.TryWrite(times + 16, new Timespec { Sec = 0, Nsec = Timespec.UtimeOmit });
        Assert.Equal(0, Guest.Call(280, AT_FDCWD, (long)Guest.Str("/tmp/hard"), (long)times, 0));
        Assert.Equal(0, Stat("/tmp/hard", out st));
        Assert.Equal((100, 5), (st.AtimeSec, st.AtimeNsec));
        Guest.Memory.TryWrite(times, new Timespec { Sec = 0, Nsec = 2_000_000_000 });
        Assert.Equal(Err(Errno.EINVAL), Guest.Call(280, AT_FDCWD, (long)Guest.Str("/tmp/hard"), (long)times, 0));
        // umask.
        Assert.Equal(0x12, Guest.Call(95, 0x3F));
        Assert.True(Open("/tmp/masked", O_WRONLY | O_CREAT, 0x1FF) >= 0);
        Assert.Equal(0, Stat("/tmp/masked", out st));
        Assert.Equal(FileModes.Regular | 0x1C0, st.Mode);
        Assert.Equal(0, Guest.Call(92, (long)Guest.Str("/tmp/masked"), 0, 0));
        Assert.Equal(0, Stat("/tmp/masked", out st));
        Assert.Equal(0u, st.Uid);
    }

    [Fact]
    public void Openat_relative_to_a_directory_descriptor_and_fchdir()
    {
        Guest.Call(83, (long)Guest.Str("/tmp/base"), 0x1FF);
        long dir = Open("/tmp/base", O_RDONLY | O_DIRECTORY);
        long fd = Guest.Call(257, dir, (long)Guest.Str("rel"), O_WRONLY | O_CREAT, 0x1A4);
        Assert.True(fd >= 0);
        Assert.Equal(0, Stat("/tmp/base/rel", out _));
        Assert.Equal(Err(Errno.ENOTDIR), Guest.Call(257, fd, (long)Guest.Str("x"), O_RDONLY, 0));
        Assert.Equal(Err(Errno.EBADF), Guest.Call(257, 99, (long)Guest.Str("x"), O_RDONLY, 0));
        Assert.True(Guest.Call(257, 99, (long)Guest.Str("/tmp/base/rel"), O_RDONLY, 0) >= 0); // absolute ignores dirfd
        long pathFd = Open("/tmp/base", O_PATH);
        Assert.Equal(0, Guest.Call(81, pathFd));
        Assert.Equal(0, Stat("rel", out _));
        Assert.Equal(Err(Errno.ENOTDIR), Guest.Call(81, fd));
        ulong statfs = Guest.Alloc(120);
        Assert.Equal(0, Guest.Call(137, (long)Guest.Str("/"), (long)statfs));
        Assert.Equal(0x01021994L, Guest.Read<LinuxStatfs>(statfs).Type);
    }

    [Fact]
    public void Empty_root_has_dev_proc_and_tmp()
    {
        Assert.Equal([".", "..", "dev", "proc", "tmp"], ListDirectory("/"));
        Assert.Equal(Err(Errno.ENOENT), Open("/etc/passwd", O_RDONLY));
        Assert.Equal(0, Stat("/tmp", out var st));
        Assert.Equal(FileModes.Directory | 0x3FF, st.Mode);
        Assert.Equal(Err(Errno.EACCES), Open("/proc/self/fd/new", O_WRONLY | O_CREAT));
    }

    [Fact]
    public void Extra_files_create_their_directories()
    {
        NewGuest(extra: new Dictionary<string, byte[]> { ["/usr/local/bin/prog"] = [1, 2, 3], ["/bin/busybox"] = [4] });
        Assert.Equal(0, Stat("/usr/local/bin/prog", out var st));
        Assert.Equal(3, st.Size);
        Assert.Equal(FileModes.Regular | 0x1ED, st.Mode);
        Assert.Equal(new byte[] { 1, 2, 3 }, Guest.FileSystem.ReadFile("/usr/local/bin/prog"));
        WriteFile("/bin/busybox", "changed");
        Assert.Equal("changed", ReadFile("/bin/busybox"));
        NewGuest(extra: new Dictionary<string, byte[]> { ["/bin/busybox"] = [4] });
        Assert.Equal(new byte[] { 4 }, Guest.FileSystem.ReadFile("/bin/busybox"));
    }
}
