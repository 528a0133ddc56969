using System.Text;
using P2PReplay.Linux.Net;

namespace P2PReplay.Tests.Net;

/// <summary>
/// Scripted TCP clients on an <see cref="InMemoryHostNetwork"/>: once the guest listens on the port, every client
/// connects; each then sends its chunks one by one, a chunk only after the replies to every complete line it sent
/// so far have arrived; a client with nothing left closes (unless told to stay). Deterministic.
/// </summary>
public sealed class ScriptedClients
{
    private readonly int _port;
    private readonly List<Client> _clients = [];
    private bool _connected;

    public ScriptedClients(int port, params string[][] scripts)
    {
        _port = port;
        for (int i = 0; i < scripts.Length; i++) _clients.Add(new Client(100 + i, scripts[i]));
        Network = new InMemoryHostNetwork { OnPoll = Step };
    }

    public InMemoryHostNetwork Network { get; }

    /// <summary>Clients that stay connected after their last chunk (e.g. the one that sends QUIT).</summary>
    public HashSet<int> StayOpen { get; } = [];

    public string Replies(int client) => Network.SentText(100 + client);

    private void Step(InMemoryHostNetwork net)
    {
        if (!net.Listening.Contains(_port)) return;
        if (!_connected)
        {
            _connected = true;
            foreach (var c in _clients) net.Enqueue(NetEvent.Connect(_port, c.Id, [10, 0, 0, (byte)c.Id], 40000 + (int)c.Id));
            return;
        }
        foreach (var c in _clients)
        {
            if (c.Closed || net.ClosedByGuest.Contains(c.Id)) continue;
            int replies = net.SentText(c.Id).Count(ch => ch == '\n');
            if (replies < c.RepliesNeeded) continue;
            if (c.Next < c.Chunks.Length)
            {
                string chunk = c.Chunks[c.Next++];
                c.RepliesNeeded += chunk.Count(ch => ch == '\n');
                net.Enqueue(NetEvent.Bytes(c.Id, Encoding.UTF8.GetBytes(chunk)));
            }
            else if (!StayOpen.Contains((int)c.Id - 100))
            {
                c.Closed = true;
                net.Enqueue(NetEvent.Closed(c.Id));
            }
        }
    }

    private sealed class Client(long id, string[] chunks)
    {
        public long Id { get; } = id;
        public string[] Chunks { get; } = chunks;
        public int Next { get; set; }
        public int RepliesNeeded { get; set; }
        public bool Closed { get; set; }
    }
}
