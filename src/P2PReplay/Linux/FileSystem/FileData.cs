using P2PReplay.Linux.Abi;

namespace P2PReplay.Linux.FileSystem;

/// <summary>
/// The contents of a regular file. An image file reads from the host (or from an extra file's bytes) until its
/// first change, when its bytes are copied up into the in-memory layer; from then on the host is never read again.
/// Growth past the written bytes is sparse: unwritten bytes read as zeros without being stored.
/// </summary>
public sealed class FileData
{
    /// <summary>The largest file the layer holds (writes past it fail with EFBIG).</summary>
    public const long MaxSize = 1L << 30;

    private string? _hostPath;
    private byte[]? _imageBytes;
    private byte[] _buffer = [];
    private long _stored;

    private FileData() { }

    public long Length { get; private set; }

    /// <summary>True while the contents still come from the immutable image.</summary>
    public bool IsImage => _hostPath is not null || _imageBytes is not null;

    public static FileData Empty() => new();

    public static FileData FromHost(string hostPath, long length) => new() { _hostPath = hostPath, Length = length };

    public static FileData FromBytes(byte[] bytes) => new() { _imageBytes = bytes, Length = bytes.Length };

    /// <summary>Reads at an offset: bytes read, 0 at or past the end, -EIO when the host image cannot be read.</summary>
    public long Read(Span<byte> destination, long offset)
    {
        if (offset < 0) return -Errno.EINVAL;
        if (offset >= Length || destination.IsEmpty) return 0;
        int count = (int)Math.Min(destination.Length, Length - offset);
        destination = destination[..count];
        if (_imageBytes is not null)
        {
            _imageBytes.AsSpan((int)offset, count).CopyTo(destination);
            return count;
        }
        if (_hostPath is not null) return ReadHost(_hostPath, destination, offset);
        int fromBuffer = (int)Math.Clamp(_stored - offset, 0, count);
        if (fromBuffer > 0) _buffer.AsSpan((int)offset, fromBuffer).CopyTo(destination);
        destination[fromBuffer..].Clear();
        return count;
    }

    /// <summary>Writes at an offset, growing the file: bytes written or -errno.</summary>
    public long Write(ReadOnlySpan<byte> source, long offset)
    {
        if (offset < 0) return -Errno.EINVAL;
        if (offset > MaxSize || source.Length > MaxSize - offset) return -Errno.EFBIG;
        long copied = CopyUp();
        if (copied < 0) return copied;
        long end = offset + source.Length;
        EnsureStored(end);
        source.CopyTo(_buffer.AsSpan((int)offset));
        if (end > Length) Length = end;
        return source.Length;
    }

    /// <summary>truncate/ftruncate: 0 or -errno.</summary>
    public long SetLength(long length)
    {
        if (length < 0) return -Errno.EINVAL;
        if (length > MaxSize) return -Errno.EFBIG;
        long copied = CopyUp();
        if (copied < 0) return copied;
        if (length < _stored)
        {
            _buffer.AsSpan((int)length, (int)(_stored - length)).Clear();
            _stored = length;
        }
        Length = length;
        return 0;
    }

    /// <summary>The whole contents (for the loader); null when the host image cannot be read.</summary>
    public byte[]? ReadAll()
    {
        var bytes = new byte[Length];
        return Read(bytes, 0) == Length ? bytes : null;
    }

    /// <summary>Snapshots: the host file behind an unchanged image file.</summary>
    internal string? HostPath => _hostPath;

    /// <summary>Snapshots: the extra-file bytes behind an unchanged image file.</summary>
    internal byte[]? ImageBytes => _imageBytes;

    /// <summary>Snapshots: the stored bytes of a layer file (past them it reads zeros up to Length).</summary>
    internal ReadOnlySpan<byte> StoredBytes => _buffer.AsSpan(0, (int)_stored);

    /// <summary>Snapshots: a layer file from its stored bytes and length.</summary>
    internal static FileData FromLayer(byte[] stored, long length) =>
        new() { _buffer = stored, _stored = stored.Length, Length = Math.Max(length, stored.Length) };

    private long CopyUp()
    {
        if (!IsImage) return 0;
        if (Length > MaxSize) return -Errno.EFBIG;
        var bytes = new byte[Length];
        if (Length > 0 && Read(bytes, 0) != Length) return -Errno.EIO;
        _hostPath = null;
        _imageBytes = null;
        _buffer = bytes;
        _stored = bytes.Length;
        return 0;
    }

    private void EnsureStored(long end)
    {
        if (end <= _stored) return;
        if (end > _buffer.Length)
        {
            long capacity = Math.Min(Math.Max(end, Math.Max(4096, (long)_buffer.Length * 2)), Math.Min(MaxSize, Array.MaxLength));
            Array.Resize(ref _buffer, (int)capacity);
        }
        _stored = end;
    }

    private static long ReadHost(string hostPath, Span<byte> destination, long offset)
    {
        try
        {
            using var handle = File.OpenHandle(hostPath, FileMode.Open, FileAccess.Read);
            int total = 0;
            while (total < destination.Length)
            {
                int n = RandomAccess.Read(handle, destination[total..], offset + total);
                if (n <= 0) break;
                total += n;
            }
            // The image is immutable; a host file that shrank reads as zeros rather than changing the guest-visible size.
            destination[total..].Clear();
            return destination.Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return -Errno.EIO;
        }
    }
}
