namespace P2PReplay.Interop;

/// <summary>An owned mmap'd host region; released with munmap.</summary>
internal sealed unsafe class SafeMappedMemory : System.Runtime.InteropServices.SafeHandle
{
    private SafeMappedMemory(nint address, nuint length) : base(Libc.MapFailed, ownsHandle: true)
    {
        SetHandle(address);
        Length = length;
    }

    public nuint Length { get; }

    public byte* Pointer => (byte*)handle;

    public override bool IsInvalid => handle == Libc.MapFailed || handle == 0;

    /// <summary>
    /// Anonymous private zero-filled memory, reserved lazily (MAP_NORESERVE): only touched pages cost host RAM.
    /// The start is 2 MiB-aligned so that guest large pages line up with host transparent huge pages.
    /// </summary>
    public static SafeMappedMemory AllocateAnonymous(ulong length)
    {
        const ulong Align = 2UL << 20;
        ulong reserve = length + Align;
        void* p = NativeMmap.Mmap(null, (nuint)reserve, Libc.PROT_READ | Libc.PROT_WRITE,
            Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
        if ((nint)p == Libc.MapFailed)
        {
            throw new System.ComponentModel.Win32Exception(System.Runtime.InteropServices.Marshal.GetLastPInvokeError(),
                $"mmap of {length} bytes of guest memory failed");
        }
        ulong start = ((ulong)p + Align - 1) & ~(Align - 1);
        ulong head = start - (ulong)p, tail = reserve - head - length;
        // SAFETY: head and tail are the unused ends of the reservation just made; the aligned middle stays mapped.
        if (head > 0) NativeMunmap.Munmap(p, (nuint)head);
        if (tail > 0) NativeMunmap.Munmap((void*)(start + length), (nuint)tail);
        // Transparent huge pages let KVM back the guest with 2 MiB host pages (fewer faults on first touch).
        // A refusal (THP disabled) is harmless.
        NativeMadvise.Madvise((void*)start, (nuint)length, Libc.MADV_HUGEPAGE);
        return new SafeMappedMemory((nint)start, (nuint)length);
    }

    /// <summary>Maps a file descriptor shared (used for kvm_run).</summary>
    public static SafeMappedMemory MapShared(SafeFileDescriptor fd, ulong length)
    {
        void* p = NativeMmap.Mmap(null, (nuint)length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd.Fd, 0);
        if ((nint)p == Libc.MapFailed)
        {
            throw new System.ComponentModel.Win32Exception(System.Runtime.InteropServices.Marshal.GetLastPInvokeError(), "mmap of kvm_run failed");
        }
        return new SafeMappedMemory((nint)p, (nuint)length);
    }

    /// <summary>
    /// Which pages of a page-aligned sub-range the host has ever populated (mincore), one byte each, nonzero when
    /// resident, without touching any page. False when the host refuses; then every page must be assumed populated.
    /// </summary>
    public bool TryGetResidency(ulong offset, ulong length, Span<byte> vector)
    {
        if (offset + length > Length || offset % 4096 != 0 || (ulong)vector.Length < (length + 4095) / 4096) return false;
        fixed (byte* v = vector)
        {
            // SAFETY: the range lies inside the mapping (checked above) and v has one byte per page of it.
            return NativeMincore.Mincore(Pointer + offset, (nuint)length, v) == 0;
        }
    }

    /// <summary>Drops the pages of a sub-range so they read back as zeros (MADV_DONTNEED on private anonymous memory).</summary>
    public void Discard(ulong offset, ulong length)
    {
        if (offset + length > Length || length == 0) return;
        // SAFETY: offset + length lies inside the mapping (checked above), so madvise touches only our own region.
        NativeMadvise.Madvise(Pointer + offset, (nuint)length, Libc.MADV_DONTNEED);
    }

    protected override bool ReleaseHandle() => NativeMunmap.Munmap((void*)handle, Length) == 0;
}
