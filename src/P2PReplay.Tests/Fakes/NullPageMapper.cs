using P2PReplay.Linux.Memory;

namespace P2PReplay.Tests.Fakes;

/// <summary>A page mapper for tests over plain memory: protections live in GuestMemory only; discarded pages are zeroed.</summary>
public sealed class NullPageMapper(GuestMemory? memory = null) : IPageMapper
{
    public void SetProtection(ulong start, ulong length, Protection protection) { }

    public void Discard(ulong start, ulong length)
    {
        if (memory is null) return;
        for (ulong done = 0; done < length;)
        {
            int chunk = (int)Math.Min(length - done, 1UL << 30);
            memory.UncheckedSpan(start + done, chunk).Clear();
            done += (ulong)chunk;
        }
    }
}
