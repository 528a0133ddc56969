using System.Buffers.Binary;
using System.Security.Cryptography;
using P2PReplay.Replay;
using P2PReplay.Replay.Format;
using ZstdSharp;

namespace P2PReplay.Vmm.Snapshots;

/// <summary>One run of consecutive non-zero 4 KiB pages of guest-physical memory.</summary>
internal sealed record MemoryRun(ulong Address, byte[] Bytes);

/// <summary>
/// The whole state of a replaying VM at an exit boundary, enough to continue the replay on another machine from the
/// log's tail alone: guest-physical memory (non-zero pages only: user memory, the VMM's system area and page tables),
/// the vCPU (kvm_regs, kvm_sregs, XSAVE or FPU state as the sync-regs page held them), the personality
/// (<see cref="PersonalityCodec"/>), the pages written since the last digest, the exit count, and where in the log the
/// replay continues with its counters and output digest (<see cref="Resume"/>).
/// The log before <see cref="TailOffset"/> is not needed by a VM restored from this snapshot.
/// </summary>
internal sealed class VmSnapshot
{
    public const int FormatVersion = 1;
    public const int HeaderSize = 32;
    public const int HashSize = 32;

    /// <summary>Default cap on the decompressed content Decode accepts (the largest guest memory plus 1 GiB of state).</summary>
    public const long DefaultMaxContentBytes = 2047L << 20;

    private const int RegsSize = 144, SregsSize = 312;
    private const ulong PageSize = 4096;

    private static ReadOnlySpan<byte> Magic => "P2PSNAP\0"u8;

    public required ReplayResumePoint Resume { get; init; }

    /// <summary>Exits handled when the snapshot was taken; the restored VM's exit counter continues from it.</summary>
    public required long Exits { get; init; }

    public required bool SawUserModeSyscall { get; init; }

    /// <summary>The size of guest-physical memory (user range plus page-table pool); a restoring VM must have the same.</summary>
    public required ulong PhysicalSize { get; init; }

    /// <summary>struct kvm_regs as the guest resumes with it.</summary>
    public required byte[] Registers { get; init; }

    /// <summary>struct kvm_sregs.</summary>
    public required byte[] SpecialRegisters { get; init; }

    /// <summary>struct kvm_xsave (4096 bytes) or struct kvm_fpu (416 bytes).</summary>
    public required byte[] FloatingPoint { get; init; }

    public required ulong NextPageTable { get; init; }

    public required ulong[] FreePageTables { get; init; }

    /// <summary>Pages written since the last digest (written-pages digest mode), one bit per page; empty otherwise.</summary>
    public required ulong[] WrittenPages { get; init; }

    public required byte[] Personality { get; init; }

    public required IReadOnlyList<MemoryRun> Memory { get; init; }

    /// <summary>Where the log tail this snapshot needs starts: chunk, its byte offset in the log, and the record in it.</summary>
    public LogPosition TailPosition => Resume.Position;

    /// <summary>The log may be truncated before this byte offset (a chunk boundary) once the snapshot is stored.</summary>
    public long TailOffset => Resume.Position.Offset;

    /// <summary>Bytes of guest memory held (non-zero pages).</summary>
    public long MemoryBytes => Memory.Sum(m => (long)m.Bytes.Length);

    /// <summary>
    /// Layout: 32-byte header ("P2PSNAP\0", u32 version, u32 flags = 0, u64 content length, u64 stored length, little
    /// endian), SHA-256 over the header and the stored bytes, then the content compressed with zstd.
    /// </summary>
    public byte[] Encode(int compressionLevel = 1)
    {
        var w = new ByteWriter();
        EncodeContent(w);
        return Seal(w.Written, compressionLevel);
    }

    /// <summary>The uncompressed content (tests seal mutated content to reach the parser behind the hash).</summary>
    internal void EncodeContent(ByteWriter w)
    {
        w.Bytes(Resume.HeaderJson);
        w.VarU((ulong)Resume.Position.Chunk);
        w.VarI(Resume.Position.Offset);
        w.VarU((ulong)Resume.Position.Index);
        w.VarI(Resume.Events);
        w.VarI(Resume.DigestsChecked);
        w.VarI(Resume.LastDigestExit);
        w.U64(Resume.OutputHash);
        w.VarI(Resume.OutputBytes);
        w.VarI(Exits);
        w.U8(SawUserModeSyscall ? (byte)1 : (byte)0);
        w.U64(PhysicalSize);
        w.Bytes(Registers);
        w.Bytes(SpecialRegisters);
        w.Bytes(FloatingPoint);
        w.U64(NextPageTable);
        w.VarU((ulong)FreePageTables.Length);
        foreach (ulong table in FreePageTables) w.U64(table);
        w.VarU((ulong)WrittenPages.Length);
        foreach (ulong word in WrittenPages) w.U64(word);
        w.Bytes(Personality);
        w.VarU((ulong)Memory.Count);
        foreach (var run in Memory)
        {
            w.U64(run.Address);
            w.Bytes(run.Bytes);
        }
    }

    /// <summary>Compresses content and puts the header and hash in front of it.</summary>
    internal static byte[] Seal(ReadOnlySpan<byte> content, int compressionLevel = 1)
    {
        using var compressor = new Compressor(compressionLevel);
        var output = new byte[HeaderSize + HashSize + Compressor.GetCompressBound(content.Length)];
        int stored = compressor.Wrap(content, output.AsSpan(HeaderSize + HashSize));
        var header = output.AsSpan(0, HeaderSize);
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], FormatVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(header[16..], (ulong)content.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(header[24..], (ulong)stored);
        Hash(header, output.AsSpan(HeaderSize + HashSize, stored), output.AsSpan(HeaderSize, HashSize));
        Array.Resize(ref output, HeaderSize + HashSize + stored);
        return output;
    }

    private static void Hash(ReadOnlySpan<byte> header, ReadOnlySpan<byte> stored, Span<byte> destination)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(header);
        sha.AppendData(stored);
        sha.GetHashAndReset(destination);
    }

    /// <summary>
    /// Checks and reads an encoded snapshot. Anything damaged, truncated, tampered with or hostile is a
    /// <see cref="SnapshotFormatException"/>; memory use grows only with the bytes actually decompressed, up to
    /// <paramref name="maxContentBytes"/>.
    /// </summary>
    public static VmSnapshot Decode(ReadOnlySpan<byte> encoded, long maxContentBytes = DefaultMaxContentBytes)
    {
        if (encoded.Length < HeaderSize + HashSize) throw new SnapshotFormatException($"not a VM snapshot: {encoded.Length} bytes is shorter than its header");
        var header = encoded[..HeaderSize];
        if (!header[..8].SequenceEqual(Magic)) throw new SnapshotFormatException("not a VM snapshot (bad magic)");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
        if (version != FormatVersion) throw new SnapshotFormatException($"VM snapshot format version {version} is not supported; this p2preplay reads version {FormatVersion}");
        if (BinaryPrimitives.ReadUInt32LittleEndian(header[12..]) != 0) throw new SnapshotFormatException("the snapshot header has unknown flags");
        ulong contentLength = BinaryPrimitives.ReadUInt64LittleEndian(header[16..]);
        ulong storedLength = BinaryPrimitives.ReadUInt64LittleEndian(header[24..]);
        if (storedLength != (ulong)(encoded.Length - HeaderSize - HashSize))
            throw new SnapshotFormatException($"the snapshot holds {encoded.Length - HeaderSize - HashSize} content bytes; its header says {storedLength} (truncated or padded)");
        if (contentLength > (ulong)Math.Min(maxContentBytes, Array.MaxLength))
            throw new SnapshotFormatException($"the snapshot's content is {contentLength} bytes, more than the {Math.Min(maxContentBytes, Array.MaxLength)} accepted");
        var stored = encoded[(HeaderSize + HashSize)..];
        Span<byte> hash = stackalloc byte[HashSize];
        Hash(header, stored, hash);
        if (!hash.SequenceEqual(encoded.Slice(HeaderSize, HashSize))) throw new SnapshotFormatException("the snapshot's SHA-256 does not match its content (damaged or tampered with)");

        byte[] content = Decompress(stored, (int)contentLength);
        try
        {
            return Parse(content);
        }
        catch (FormatException e)
        {
            throw new SnapshotFormatException($"the snapshot's content is malformed: {e.Message}", e);
        }
    }

    private static unsafe byte[] Decompress(ReadOnlySpan<byte> stored, int contentLength)
    {
        // Streamed into a buffer that grows with what actually comes out, so a lying length costs nothing.
        var buffer = new byte[Math.Min(contentLength, Math.Max(64 * 1024, stored.Length * 4))];
        int total = 0;
        try
        {
            fixed (byte* p = stored)
            {
                // SAFETY: the UnmanagedMemoryStream reads only the pinned span's bytes and does not outlive this block.
                using var source = new UnmanagedMemoryStream(p, stored.Length);
                using var zstd = new DecompressionStream(source);
                while (true)
                {
                    if (total == buffer.Length)
                    {
                        if (total == contentLength)
                        {
                            if (zstd.ReadByte() >= 0) throw new SnapshotFormatException($"the snapshot decompresses to more than the {contentLength} bytes its header says");
                            break;
                        }
                        Array.Resize(ref buffer, (int)Math.Min(contentLength, (long)buffer.Length * 2));
                    }
                    int n = zstd.Read(buffer, total, buffer.Length - total);
                    if (n <= 0) break;
                    total += n;
                }
            }
        }
        catch (Exception e) when (e is ZstdException or IOException or InvalidDataException)
        {
            throw new SnapshotFormatException($"the snapshot does not decompress: {e.Message}", e);
        }
        if (total != contentLength) throw new SnapshotFormatException($"the snapshot decompresses to {total} bytes; its header says {contentLength}");
        return buffer;
    }

    private static VmSnapshot Parse(ReadOnlySpan<byte> content)
    {
        var r = new ByteReader(content);
        byte[] headerJson = r.Bytes().ToArray();
        var position = new LogPosition(r.Int32(int.MaxValue), NonNegative(r.VarI(), "log offset"), r.Int32(int.MaxValue));
        if (position.Offset < 8) throw new FormatException("the log position lies inside the log's stream header");
        var resume = new ReplayResumePoint(headerJson, position, NonNegative(r.VarI(), "event count"), NonNegative(r.VarI(), "digest count"),
            NonNegative(r.VarI(), "digest exit"), r.U64(), NonNegative(r.VarI(), "output bytes"));
        long exits = NonNegative(r.VarI(), "exit count");
        bool sawUserMode = r.U8() != 0;
        ulong physicalSize = r.U64();
        if (physicalSize == 0 || physicalSize % PageSize != 0 || physicalSize > (4UL << 30)) throw new FormatException($"guest-physical size 0x{physicalSize:x}");
        byte[] regs = r.Bytes().ToArray();
        byte[] sregs = r.Bytes().ToArray();
        byte[] fpu = r.Bytes().ToArray();
        if (regs.Length != RegsSize || sregs.Length != SregsSize || fpu.Length is not (Kvm.KvmVcpu.XsaveSize or Kvm.KvmVcpu.FpuSize))
            throw new FormatException("vCPU register blocks of the wrong size");
        ulong nextTable = r.U64();
        int freeCount = r.Int32((int)(physicalSize / PageSize));
        var free = new ulong[freeCount];
        for (int i = 0; i < freeCount; i++) free[i] = r.U64();
        int writtenCount = r.Int32((int)(physicalSize / PageSize / 64 + 1));
        var written = new ulong[writtenCount];
        for (int i = 0; i < writtenCount; i++) written[i] = r.U64();
        byte[] personality = r.Bytes().ToArray();
        int runCount = r.Int32((int)(physicalSize / PageSize));
        var runs = new List<MemoryRun>(Math.Min(runCount, 1 << 16));
        ulong previousEnd = 0;
        for (int i = 0; i < runCount; i++)
        {
            ulong address = r.U64();
            var bytes = r.Bytes();
            if (address % PageSize != 0 || bytes.Length == 0 || (ulong)bytes.Length % PageSize != 0 || address < previousEnd
                || address > physicalSize || (ulong)bytes.Length > physicalSize - address)
                throw new FormatException($"memory run 0x{address:x}+0x{bytes.Length:x} is misaligned, out of order or outside guest memory");
            runs.Add(new MemoryRun(address, bytes.ToArray()));
            previousEnd = address + (ulong)bytes.Length;
        }
        if (!r.AtEnd) throw new FormatException("trailing bytes after the snapshot");
        return new VmSnapshot
        {
            Resume = resume,
            Exits = exits,
            SawUserModeSyscall = sawUserMode,
            PhysicalSize = physicalSize,
            Registers = regs,
            SpecialRegisters = sregs,
            FloatingPoint = fpu,
            NextPageTable = nextTable,
            FreePageTables = free,
            WrittenPages = written,
            Personality = personality,
            Memory = runs,
        };
    }

    private static long NonNegative(long value, string what) => value >= 0 ? value : throw new FormatException($"negative {what}");
}

/// <summary>An encoded VM snapshot is damaged, truncated, tampered with, of another version, or does not fit the VM.</summary>
internal sealed class SnapshotFormatException(string message, Exception? inner = null) : Exception(message, inner);
