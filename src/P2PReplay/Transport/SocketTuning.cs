using System.Net.Sockets;

namespace P2PReplay.Transport;

/// <summary>Socket options every peer connection gets.</summary>
internal static class SocketTuning
{
    public static void Apply(Socket socket)
    {
        socket.NoDelay = true;

        // Keepalive finds peers that vanished without a FIN (power loss, partition) within about a minute.
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 30);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 10);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 3);
    }
}
