namespace P2PReplay.Transport;

/// <summary>Limits and timeouts of the peer transport; defaults suit a LAN/WAN cluster.</summary>
internal sealed class TransportOptions
{
    /// <summary>Largest encrypted frame (ciphertext + tag) accepted or sent.</summary>
    public int MaxFrameSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>Largest payload a compressed frame may expand to (decompression bomb limit).</summary>
    public int MaxDecompressedSize { get; init; } = 16 * 1024 * 1024;

    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A first handshake message whose timestamp is further than this from our clock is refused as stale.</summary>
    public TimeSpan MaxClockSkew { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Once a frame header arrived, the rest of the frame must follow within this time.</summary>
    public TimeSpan FrameBodyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A send that cannot complete in this time (peer not reading) closes the connection.</summary>
    public TimeSpan SendTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Inbound connections still handshaking beyond this number are closed at once.</summary>
    public int MaxPendingHandshakes { get; init; } = 64;

    public int ReplayCacheCapacity { get; init; } = 8192;
}
