using System.Net.Sockets;

namespace P2PReplay.Transport;

/// <summary>Outbound connections: TCP connect with a timeout, then the initiator handshake.</summary>
internal static class PeerConnector
{
    /// <param name="address">"host:port" of the peer's listener.</param>
    /// <param name="listenAddress">Our own advertised "host:port", so the peer can reply to the right place ("" if we do not listen).</param>
    /// <param name="expectedRemoteNodeId">When set, a peer with another NodeId is refused.</param>
    public static async Task<SecureConnection> ConnectAsync(PeerContext context, string address, string listenAddress = "", string? expectedRemoteNodeId = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        if (!PeerAddress.TryParse(address, out string host, out int port)) throw new FormatException($"Peer address '{address}' is not host:port.");
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        NetworkStream? stream = null;
        bool handedOver = false;
        try
        {
            using (var connectTimeout = new TimeoutScope(timeout ?? context.Options.ConnectTimeout, context.Time, cancellationToken))
            {
                try
                {
                    await socket.ConnectAsync(host, port, connectTimeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException($"connecting to {address} timed out");
                }
            }

            SocketTuning.Apply(socket);
            stream = new NetworkStream(socket, ownsSocket: true);
            HandshakeResult result;
            try
            {
                result = await Handshake.InitiateAsync(stream, context, listenAddress, expectedRemoteNodeId, cancellationToken).ConfigureAwait(false);
            }
            catch (HandshakeException e)
            {
                context.Counters.HandshakeRefused(e.Reason);
                TransportLog.HandshakeRefused(context.Logger, address, e.Reason, e.Message);
                throw;
            }

            TransportLog.PeerConnected(context.Logger, result.RemoteNodeId, "outbound", address);
            var connection = new SecureConnection(stream, result, context, socket.RemoteEndPoint);
            handedOver = true;
            return connection;
        }
        finally
        {
            if (!handedOver)
            {
                if (stream is not null) await stream.DisposeAsync().ConfigureAwait(false);
                socket.Dispose();
            }
        }
    }
}
