using System.Security.Cryptography;

namespace P2PReplay.Transport;

/// <summary>Source of key material and nonces; injectable so tests can be deterministic.</summary>
internal interface ISecureRandom
{
    void Fill(Span<byte> destination);
}

/// <summary>The operating system's CSPRNG.</summary>
internal sealed class SystemSecureRandom : ISecureRandom
{
    public static SystemSecureRandom Instance { get; } = new();

    private SystemSecureRandom()
    {
    }

    public void Fill(Span<byte> destination) => RandomNumberGenerator.Fill(destination);
}
