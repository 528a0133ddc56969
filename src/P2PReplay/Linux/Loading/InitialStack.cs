using System.Buffers.Binary;
using System.Text;

namespace P2PReplay.Linux.Loading;

/// <summary>Auxiliary vector keys (linux/auxvec.h, asm/auxvec.h).</summary>
public static class AuxvType
{
    public const ulong Null = 0, Phdr = 3, Phent = 4, Phnum = 5, Pagesz = 6, Base = 7, Flags = 8, Entry = 9,
        Uid = 11, Euid = 12, Gid = 13, Egid = 14, Platform = 15, Hwcap = 16, Clktck = 17, Secure = 23, Random = 25,
        Hwcap2 = 26, Execfn = 31;
}

/// <summary>
/// The process's initial stack as the System V x86-64 ABI (§3.4.1) and Linux's execve lay it out: argc, argv[],
/// NULL, envp[], NULL, auxv pairs ending in AT_NULL, then the strings and AT_RANDOM's 16 bytes near the top.
/// No AT_SYSINFO_EHDR: without a vDSO libc asks the VMM for the time.
/// </summary>
public static class InitialStack
{
    public sealed record Layout(ulong StackPointer, byte[] Bytes);

    /// <param name="stackTop">first address past the stack (16-byte aligned)</param>
    /// <param name="auxv">(type, value) pairs; AT_RANDOM, AT_EXECFN and AT_PLATFORM are added here</param>
    public static Layout Build(ulong stackTop, IReadOnlyList<string> argv, IReadOnlyList<string> envp,
        IReadOnlyList<(ulong Type, ulong Value)> auxv, string executablePath, ReadOnlySpan<byte> random16)
    {
        if (random16.Length != 16) throw new ArgumentException("AT_RANDOM needs 16 bytes", nameof(random16));
        // Strings area, built downward from the top: 8 zero bytes, execfn, env strings, argv strings, platform, random.
        ulong cursor = stackTop - 8;
        ulong Place(ReadOnlySpan<byte> bytes)
        {
            cursor -= (ulong)bytes.Length;
            return cursor;
        }
        var blobs = new List<(ulong Address, byte[] Bytes)>();
        ulong PlaceString(string s)
        {
            byte[] b = Encoding.UTF8.GetBytes(s + "\0");
            ulong at = Place(b);
            blobs.Add((at, b));
            return at;
        }
        ulong execfn = PlaceString(executablePath);
        var envAddresses = new ulong[envp.Count];
        for (int i = envp.Count - 1; i >= 0; i--) envAddresses[i] = PlaceString(envp[i]);
        var argAddresses = new ulong[argv.Count];
        for (int i = argv.Count - 1; i >= 0; i--) argAddresses[i] = PlaceString(argv[i]);
        ulong platform = PlaceString("x86_64");
        cursor &= ~15UL;
        ulong random = Place(random16);
        blobs.Add((random, random16.ToArray()));

        var allAux = new List<(ulong, ulong)>(auxv)
        {
            (AuxvType.Random, random),
            (AuxvType.Execfn, execfn),
            (AuxvType.Platform, platform),
            (AuxvType.Null, 0),
        };
        int words = 1 + argv.Count + 1 + envp.Count + 1 + allAux.Count * 2;
        ulong sp = (cursor - (ulong)words * 8) & ~15UL;
        var bytes = new byte[stackTop - sp];
        void WriteWord(ref ulong at, ulong value)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)(at - sp)), value);
            at += 8;
        }
        ulong p = sp;
        WriteWord(ref p, (ulong)argv.Count);
        foreach (ulong a in argAddresses) WriteWord(ref p, a);
        WriteWord(ref p, 0);
        foreach (ulong e in envAddresses) WriteWord(ref p, e);
        WriteWord(ref p, 0);
        foreach (var (type, value) in allAux)
        {
            WriteWord(ref p, type);
            WriteWord(ref p, value);
        }
        foreach (var (address, blob) in blobs) blob.CopyTo(bytes, (int)(address - sp));
        return new Layout(sp, bytes);
    }
}
