using System.Buffers.Binary;
using System.Text;
using P2PReplay.Linux.Loading;

namespace P2PReplay.Tests.Linux;

public sealed class InitialStackTests
{
    [Fact]
    public void Layout_follows_the_x86_64_abi()
    {
        const ulong top = 0x2000_0000;
        byte[] random = Enumerable.Range(1, 16).Select(i => (byte)i).ToArray();
        var layout = InitialStack.Build(top, ["prog", "a b"], ["K=V"], [(AuxvType.Pagesz, 4096)], "/bin/prog", random);
        Assert.Equal(0UL, layout.StackPointer % 16);
        Assert.Equal(top - layout.StackPointer, (ulong)layout.Bytes.Length);

        ulong Word(int index) => BinaryPrimitives.ReadUInt64LittleEndian(layout.Bytes.AsSpan(index * 8));
        string String(ulong address)
        {
            int start = (int)(address - layout.StackPointer);
            int end = Array.IndexOf(layout.Bytes, (byte)0, start);
            return Encoding.UTF8.GetString(layout.Bytes, start, end - start);
        }

        Assert.Equal(2UL, Word(0));
        Assert.Equal("prog", String(Word(1)));
        Assert.Equal("a b", String(Word(2)));
        Assert.Equal(0UL, Word(3));
        Assert.Equal("K=V", String(Word(4)));
        Assert.Equal(0UL, Word(5));
        var auxv = new Dictionary<ulong, ulong>();
        for (int i = 6; ; i += 2)
        {
            if (Word(i) == AuxvType.Null) break;
            auxv[Word(i)] = Word(i + 1);
        }
        Assert.Equal(4096UL, auxv[AuxvType.Pagesz]);
        Assert.Equal("/bin/prog", String(auxv[AuxvType.Execfn]));
        Assert.Equal("x86_64", String(auxv[AuxvType.Platform]));
        Assert.Equal(random, layout.Bytes.AsSpan((int)(auxv[AuxvType.Random] - layout.StackPointer), 16).ToArray());
        Assert.False(auxv.ContainsKey(33)); // no AT_SYSINFO_EHDR: there is no vDSO
    }
}
