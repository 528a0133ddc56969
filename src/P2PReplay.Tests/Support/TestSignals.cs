using System.Runtime.InteropServices;

namespace P2PReplay.Tests.Interop;

/// <summary>kill(2), to send a signal to a child process in tests.</summary>
internal static partial class TestSignals
{
    [LibraryImport("libc", EntryPoint = "kill")]
    public static partial int Kill(int pid, int signal);
}
