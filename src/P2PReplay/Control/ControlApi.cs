using P2PReplay.Cluster;

namespace P2PReplay.Control;

/// <summary>The versioned endpoints of the daemon (/v1/...), mapped onto the node.</summary>
internal static class ControlApi
{
    public static string Version { get; } = typeof(ControlApi).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public static ControlRouter Build(IClusterControl node) => new ControlRouter()
        .Map("GET", "/v1/status", (_, _, _) => Task.FromResult(ControlRouter.Json(200, ToBody(node.Status()), ControlJsonContext.Default.StatusBody)))
        .Map("GET", "/v1/peers", (_, _, _) => Task.FromResult(ControlRouter.Json(200, node.Status().Members.Select(ToBody).ToList(), ControlJsonContext.Default.ListPeerBody)))
        .Map("POST", "/v1/cluster/init", async (request, _, cancel) =>
        {
            var body = request.Body.Length == 0 ? new InitBody() : ControlRouter.ReadBody(request, ControlJsonContext.Default.InitBody);
            try
            {
                return ControlRouter.Json(201, new TokenBody(await node.InitAsync(body.IncludeSeeds, cancel).ConfigureAwait(false)), ControlJsonContext.Default.TokenBody);
            }
            catch (ClusterException e)
            {
                return ControlRouter.Error(e.Status, e.Message);
            }
        })
        .Map("POST", "/v1/cluster/join", async (request, _, cancel) =>
        {
            var body = ControlRouter.ReadBody(request, ControlJsonContext.Default.TokenBody);
            try
            {
                await node.JoinAsync(body.Token, cancel).ConfigureAwait(false);
                return ControlRouter.Json(200, ToBody(node.Status()), ControlJsonContext.Default.StatusBody);
            }
            catch (ClusterException e)
            {
                return ControlRouter.Error(e.Status, e.Message);
            }
        });

    private static StatusBody ToBody(NodeStatus status) => new(
        status.NodeId, status.Address, status.Site, status.InCluster, status.RaftState, status.Leader, status.Term, status.CommitIndex,
        status.Voters, status.Learners, status.Members.Select(ToBody).ToList(), Version);

    private static PeerBody ToBody(MemberView member) => new(
        member.Id, member.Address, member.Site, member.Status, member.State, member.Cores, member.MemoryBytes, member.Raft,
        member.LastSeenMsAgo, member.RoundTripMs, member.Self);
}
