using P2PReplay.Transport;

namespace P2PReplay.Cluster.Vms;

/// <summary>
/// Carries VmNet messages between front ends and primaries: over the peer network, or, when both are on this node
/// (a client connected to the front end of the node that holds the primary), straight to the local handler — a node
/// does not dial itself.
/// </summary>
internal sealed class VmNetLink(VmNetLink.RemoteSend remote, string selfAddress, string selfId)
{
    public delegate ValueTask RemoteSend(string address, NetMessage message, CancellationToken cancel);

    /// <summary>Over the encrypted peer network (zstd for bulk data).</summary>
    public VmNetLink(PeerNetwork network, string selfAddress, string selfId)
        : this(async (address, message, cancel) => await network.SendAsync(address, ChannelKind.VmNet, message.Encode(), compress: message.Data.Length > 512, cancel).ConfigureAwait(false), selfAddress, selfId)
    {
    }

    /// <summary>Front end → primary messages addressed to this node.</summary>
    public Action<string, NetMessage>? LocalPrimary { get; set; }

    /// <summary>Primary → front end messages addressed to this node.</summary>
    public Action<string, NetMessage>? LocalFrontEnd { get; set; }

    public static bool ToPrimary(NetMessageType type) => type is NetMessageType.Open or NetMessageType.Input or NetMessageType.InputEnd or NetMessageType.OutputAck;

    public async ValueTask SendAsync(string address, NetMessage message, CancellationToken cancel)
    {
        if (address == selfAddress)
        {
            if (ToPrimary(message.Type)) LocalPrimary?.Invoke(selfAddress, message);
            else LocalFrontEnd?.Invoke(selfId, message);
            return;
        }
        await remote(address, message, cancel).ConfigureAwait(false);
    }
}
