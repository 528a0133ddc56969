namespace P2PReplay.Discovery.Gossip;

/// <summary>
/// News about members waiting to be piggybacked. One entry per member: newer news about a member replaces
/// older. Entries go out fewest-transmissions-first and are dropped after the retransmit budget.
/// </summary>
internal sealed class BroadcastQueue(int capacity)
{
    private sealed class Entry(string nodeId, byte[] message, long order)
    {
        public string NodeId { get; } = nodeId;
        public byte[] Message { get; } = message;
        public long Order { get; } = order;
        public int Transmits { get; set; }
    }

    private readonly Dictionary<string, Entry> _byNode = new(StringComparer.Ordinal);
    private long _order;

    public int Count => _byNode.Count;

    public bool Contains(string nodeId) => _byNode.ContainsKey(nodeId);

    public void Enqueue(string nodeId, byte[] encodedMessage)
    {
        _byNode[nodeId] = new Entry(nodeId, encodedMessage, _order++);
        if (_byNode.Count > capacity)
        {
            Entry stalest = _byNode.Values.OrderByDescending(e => e.Transmits).ThenBy(e => e.Order).First();
            _byNode.Remove(stalest.NodeId);
        }
    }

    /// <summary>Picks broadcasts fitting in budgetBytes (and at most maxCount), counting one transmission each.</summary>
    public void Take(int budgetBytes, int maxCount, int transmitLimit, List<byte[]> into)
    {
        if (_byNode.Count == 0 || maxCount <= 0) return;
        List<Entry> ordered = [.. _byNode.Values.OrderBy(e => e.Transmits).ThenByDescending(e => e.Order)];
        foreach (Entry entry in ordered)
        {
            if (maxCount == 0) break;
            if (entry.Message.Length > budgetBytes) continue;
            into.Add(entry.Message);
            budgetBytes -= entry.Message.Length;
            maxCount--;
            entry.Transmits++;
            if (entry.Transmits >= transmitLimit) _byNode.Remove(entry.NodeId);
        }
    }
}
