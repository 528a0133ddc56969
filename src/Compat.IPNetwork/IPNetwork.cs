namespace System.Net;

/// <summary>The subset of IPNetwork2 2.x's System.Net.IPNetwork that Makaretu.Dns.Multicast touches.</summary>
public sealed class IPNetwork
{
    private IPNetwork(string text) => Text = text;

    public string Text { get; }

    public static IPNetwork Parse(string network) => new(network ?? throw new ArgumentNullException(nameof(network)));

    public override string ToString() => Text;
}
