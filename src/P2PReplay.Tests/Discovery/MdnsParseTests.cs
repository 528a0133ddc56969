using System.Net;
using Makaretu.Dns;
using P2PReplay.Discovery.Mdns;

namespace P2PReplay.Tests.Discovery;

public sealed class MdnsParseTests
{
    private static readonly DomainName Instance = new("0123456789abcdef._p2preplay._tcp.local");
    private static readonly DomainName Host = new("0123456789abcdef.p2preplay.local");

    private static List<ResourceRecord> Answer(params string[] txt) =>
    [
        new PTRRecord { Name = new DomainName("_p2preplay._tcp.local"), DomainName = Instance },
        new SRVRecord { Name = Instance, Port = 7410, Target = Host },
        new TXTRecord { Name = Instance, Strings = [.. txt] },
        new ARecord { Name = Host, Address = IPAddress.Loopback },
        new ARecord { Name = Host, Address = IPAddress.Parse("10.1.2.3") },
    ];

    [Fact]
    public void Reads_id_site_and_the_routable_address()
    {
        var peer = MdnsDiscovery.Parse(Instance, Answer("id=0123456789abcdef", "port=7410", "site=lab"), null);
        Assert.Equal(new LanPeer("0123456789abcdef", "10.1.2.3:7410", "lab"), peer);
    }

    [Fact]
    public void An_explicit_advertised_address_wins()
    {
        var peer = MdnsDiscovery.Parse(Instance, Answer("id=0123456789abcdef", "port=7410", "site=lab", "addr=node.example.org:9000"), null);
        Assert.Equal("node.example.org:9000", peer!.Address);
    }

    [Theory]
    [InlineData("port=7410")]
    [InlineData("id=NOT-HEX", "port=7410")]
    [InlineData("id=0123456789abcdef", "port=0")]
    [InlineData("id=0123456789abcdef", "port=99999")]
    [InlineData("id=0123456789abcdef")]
    public void Foreign_or_broken_answers_are_ignored(params string[] txt)
    {
        Assert.Null(MdnsDiscovery.Parse(Instance, Answer(txt), null));
    }

    [Fact]
    public void An_answer_without_addresses_is_ignored()
    {
        var records = Answer("id=0123456789abcdef", "port=7410").Where(r => r is not ARecord).ToList();
        Assert.Null(MdnsDiscovery.Parse(Instance, records, null));
    }
}
