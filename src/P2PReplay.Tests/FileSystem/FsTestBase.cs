using System.Text;
using P2PReplay.Linux.Abi;
using P2PReplay.Tests.Fakes;

namespace P2PReplay.Tests.FileSystem;

/// <summary>Syscall shorthands over a <see cref="TestGuest"/>.</summary>
public abstract class FsTestBase : IDisposable
{
    protected const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_EXCL = 0x80, O_TRUNC = 0x200, O_APPEND = 0x400,
        O_NONBLOCK = 0x800, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000, O_PATH = 0x200000;
    protected const int AT_FDCWD = -100;

    private readonly List<string> _tempDirectories = [];

    protected TestGuest Guest { get; set; }

    protected FsTestBase() => Guest = new TestGuest();

    protected TestGuest NewGuest(string? image = null, IReadOnlyDictionary<string, byte[]>? extra = null)
    {
        Guest.Dispose();
        Guest = new TestGuest(image, extra);
        return Guest;
    }

    protected string TempImage()
    {
        string dir = Path.Combine(Path.GetTempPath(), "p2preplay-fs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        _tempDirectories.Add(dir);
        return dir;
    }

    public void Dispose()
    {
        Guest.Dispose();
        foreach (var dir in _tempDirectories)
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
        GC.SuppressFinalize(this);
    }

    protected long Open(string path, int flags, int mode = 0x1A4) => Guest.Call(257, AT_FDCWD, (long)Guest.Str(path), flags, mode);

    protected long Write(long fd, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return Guest.Call(1, fd, (long)Guest.Put(bytes), bytes.Length);
    }

    protected string ReadAll(long fd, int chunk = 4096)
    {
        var result = new List<byte>();
        ulong buffer = Guest.Alloc(chunk);
        while (true)
        {
            long n = Guest.Call(0, fd, (long)buffer, chunk);
            Assert.True(n >= 0, $"read returned {n}");
            if (n == 0) break;
            result.AddRange(Guest.Bytes(buffer, (int)n));
        }
        return Encoding.UTF8.GetString(result.ToArray());
    }

    protected string ReadFile(string path)
    {
        long fd = Open(path, O_RDONLY);
        Assert.True(fd >= 0, $"open {path} = {fd}");
        string text = ReadAll(fd);
        Assert.Equal(0, Guest.Call(3, fd));
        return text;
    }

    protected void WriteFile(string path, string text)
    {
        long fd = Open(path, O_WRONLY | O_CREAT | O_TRUNC);
        Assert.True(fd >= 0, $"open {path} = {fd}");
        Assert.Equal(Encoding.UTF8.GetByteCount(text), Write(fd, text));
        Assert.Equal(0, Guest.Call(3, fd));
    }

    protected long Stat(string path, out LinuxStat st, bool follow = true)
    {
        ulong buffer = Guest.Alloc(144);
        long result = Guest.Call(follow ? 4 : 6, (long)Guest.Str(path), (long)buffer);
        st = Guest.Read<LinuxStat>(buffer);
        return result;
    }

    /// <summary>All names getdents64 returns for a path, in order.</summary>
    protected List<string> ListDirectory(string path, int bufferSize = 4096)
    {
        long fd = Open(path, O_RDONLY | O_DIRECTORY);
        Assert.True(fd >= 0, $"open {path} = {fd}");
        var names = new List<string>();
        ulong buffer = Guest.Alloc(bufferSize);
        while (true)
        {
            long n = Guest.Call(217, fd, (long)buffer, bufferSize);
            Assert.True(n >= 0, $"getdents64 = {n}");
            if (n == 0) break;
            var bytes = Guest.Bytes(buffer, (int)n);
            for (int offset = 0; offset < n;)
            {
                int reclen = BitConverter.ToUInt16(bytes, offset + 16);
                int end = Array.IndexOf(bytes, (byte)0, offset + 19);
                names.Add(Encoding.UTF8.GetString(bytes, offset + 19, end - offset - 19));
                offset += reclen;
            }
        }
        Guest.Call(3, fd);
        return names;
    }

    protected static long Err(int errno) => -errno;
}
