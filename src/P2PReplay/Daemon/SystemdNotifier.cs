using System.Net.Sockets;
using System.Text;

namespace P2PReplay.Daemon;

/// <summary>
/// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET ("READY=1", "STOPPING=1", "STATUS=...").
/// Outside systemd (no NOTIFY_SOCKET) every call does nothing.
/// </summary>
internal sealed class SystemdNotifier
{
    private readonly string? socketPath;

    public SystemdNotifier(string? notifySocket)
    {
        // An abstract socket is given as "@name"; its address starts with a NUL byte.
        socketPath = string.IsNullOrEmpty(notifySocket) ? null : notifySocket[0] == '@' ? "\0" + notifySocket[1..] : notifySocket;
    }

    public static SystemdNotifier FromEnvironment() => new(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"));

    public bool Enabled => socketPath is not null;

    /// <summary>Sends the state lines; false if systemd could not be told (which must not stop the daemon).</summary>
    public bool Notify(string state)
    {
        if (socketPath is null) return false;
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            socket.Send(Encoding.UTF8.GetBytes(state));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
