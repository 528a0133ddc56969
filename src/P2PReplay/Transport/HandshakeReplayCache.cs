namespace P2PReplay.Transport;

/// <summary>
/// Recently seen (ephemeral key, nonce) pairs of first handshake messages. Entries live for twice the
/// clock-skew window (older first messages are refused as stale anyway); the capacity bounds memory, and
/// when it is exceeded the oldest entries go first. Losing an entry is harmless for security: a replayed
/// handshake can never complete because the final message binds the responder's fresh ephemeral key.
/// </summary>
internal sealed class HandshakeReplayCache(int capacity, TimeSpan window, TimeProvider time)
{
    private readonly Dictionary<string, DateTimeOffset> _seen = new(StringComparer.Ordinal);
    private readonly Queue<(string Key, DateTimeOffset Expiry)> _order = new();
    private readonly Lock _lock = new();

    public int Count
    {
        get
        {
            lock (_lock) return _seen.Count;
        }
    }

    /// <summary>Records the pair; false when it was seen before (a replay).</summary>
    public bool TryAdd(ReadOnlySpan<byte> ephemeralKey, ReadOnlySpan<byte> nonce)
    {
        string key = Convert.ToBase64String(ephemeralKey) + "/" + Convert.ToBase64String(nonce);
        DateTimeOffset now = time.GetUtcNow();
        lock (_lock)
        {
            while (_order.Count > 0 && (_order.Peek().Expiry <= now || _order.Count >= capacity))
            {
                (string oldKey, DateTimeOffset oldExpiry) = _order.Dequeue();
                if (_seen.TryGetValue(oldKey, out DateTimeOffset current) && current == oldExpiry) _seen.Remove(oldKey);
            }

            if (_seen.ContainsKey(key)) return false;
            DateTimeOffset expiry = now + window + window;
            _seen[key] = expiry;
            _order.Enqueue((key, expiry));
            return true;
        }
    }
}
