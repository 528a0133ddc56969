namespace P2PReplay.Kvm;

/// <summary>A KVM call failed; the message says which one and, where we know, how to fix it.</summary>
internal sealed class KvmException(string message) : Exception(message)
{
    public static KvmException FromErrno(string what)
    {
        int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        return new KvmException($"{what} failed: {new System.ComponentModel.Win32Exception(errno).Message} (errno {errno})");
    }
}
