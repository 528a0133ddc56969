using System.Runtime.InteropServices;

namespace P2PReplay.Interop;

/// <summary>An owned Unix file descriptor; -1 is invalid (0 is a valid descriptor).</summary>
internal sealed class SafeFileDescriptor : SafeHandle
{
    public SafeFileDescriptor() : base(-1, ownsHandle: true) { }

    public SafeFileDescriptor(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle == -1;

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => NativeClose.Close((int)handle) == 0;
}
