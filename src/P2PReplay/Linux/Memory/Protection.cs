namespace P2PReplay.Linux.Memory;

/// <summary>Guest page protection, as mmap's PROT_* bits.</summary>
[Flags]
public enum Protection : byte
{
    None = 0,
    Read = 1,
    Write = 2,
    Execute = 4,
}
