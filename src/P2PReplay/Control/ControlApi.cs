using P2PReplay.Cluster;

namespace P2PReplay.Control;

/// <summary>The versioned endpoints of the daemon (/v1/...), mapped onto the node.</summary>
internal static class ControlApi
{
    public static string Version { get; } = typeof(ControlApi).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public static ControlRouter Build(IClusterControl node) => new ControlRouter().MapVms(node)
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

    private static async Task<HttpResponse> Guard(Func<Task<HttpResponse>> handler)
    {
        try
        {
            return await handler().ConfigureAwait(false);
        }
        catch (ClusterException e)
        {
            return ControlRouter.Error(e.Status, e.Message);
        }
    }

    private static ControlRouter MapVms(this ControlRouter router, IClusterControl node) => router
        .Map("POST", "/v1/vms", (request, _, cancel) => Guard(async () =>
        {
            var body = ControlRouter.ReadBody(request, ControlJsonContext.Default.VmCreateBody);
            var spec = body.Image is null ? BuildSpec(body) : await Task.Run(() => VmImageSpec.Build(body, node), cancel).ConfigureAwait(false);
            var placement = await node.CreateVmAsync(body.Name, body.Replicas, spec, cancel).ConfigureAwait(false);
            var view = node.ShowVm(placement.Vm);
            return view is null ? ControlRouter.Error(409, $"{body.Name} was removed again") : ControlRouter.Json(201, ToBody(view), ControlJsonContext.Default.VmBody);
        }))
        .Map("GET", "/v1/vms", (_, _, _) => Guard(() =>
            Task.FromResult(ControlRouter.Json(200, node.ListVms().Select(ToBody).ToList(), ControlJsonContext.Default.ListVmBody))))
        .Map("GET", "/v1/vms/{name}", (_, values, _) => Guard(() => Task.FromResult(node.ShowVm(values["name"]) is { } view
            ? ControlRouter.Json(200, ToBody(view), ControlJsonContext.Default.VmBody)
            : ControlRouter.Error(404, $"no VM named {values["name"]}"))))
        .Map("GET", "/v1/vms/{name}/logs", (_, values, _) => Guard(() =>
        {
            string name = values["name"];
            if (node.ShowVm(name) is not { } view) return Task.FromResult(ControlRouter.Error(404, $"no VM named {name}"));
            return Task.FromResult(node.VmOutput(name) is { } output
                ? new HttpResponse(200, output, "text/plain; charset=utf-8")
                : ControlRouter.Error(409, $"this node runs no copy of {name}; ask its primary {view.Placement.Primary} or a replica ({string.Join(", ", view.Placement.Replicas)})"));
        }))
        .Map("DELETE", "/v1/vms/{name}", (_, values, cancel) => Guard(async () =>
        {
            await node.StopVmAsync(values["name"], cancel).ConfigureAwait(false);
            return ControlRouter.Json(200, new ErrorBody($"{values["name"]} stopped"), ControlJsonContext.Default.ErrorBody);
        }))
        .Map("POST", "/v1/vms/{name}/failover", (request, values, cancel) => Guard(async () =>
        {
            var body = request.Body.Length == 0 ? new VmFailoverBody() : ControlRouter.ReadBody(request, ControlJsonContext.Default.VmFailoverBody);
            if (body.To is { } to && (to.Length is 0 or > 128)) return ControlRouter.Error(400, "to must name a node");
            var placement = await node.FailoverVmAsync(values["name"], body.To, cancel).ConfigureAwait(false);
            var view = node.ShowVm(placement.Vm);
            return view is null ? ControlRouter.Error(409, $"{placement.Vm} was removed again") : ControlRouter.Json(200, ToBody(view), ControlJsonContext.Default.VmBody);
        }));

    /// <summary>Checks a create request and pins the program by its SHA-256 (every node verifies it before running).</summary>
    private static VmSpec BuildSpec(VmCreateBody body)
    {
        var spec = CheckSpec(body);
        if (!Path.IsPathFullyQualified(body.Program)) throw new ClusterException("the program must be an absolute path (the same on every node)", 400);
        byte[] program;
        try
        {
            program = File.ReadAllBytes(body.Program);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ClusterException($"cannot read {body.Program} on this node: {e.Message}", 400);
        }
        return spec with { ProgramSha256 = Replay.ImageHash.Of(program) };
    }

    /// <summary>The checks of a create request besides its program (name, replicas, memory, --expose); the program is not pinned yet.</summary>
    internal static VmSpec CheckSpec(VmCreateBody body)
    {
        if (body.Name is not { Length: > 0 and <= 64 } || !body.Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new ClusterException("a VM name is 1-64 letters, digits, '-', '_' or '.'", 400);
        if (body.Replicas is < 0 or > 8) throw new ClusterException("replicas must be 0 to 8", 400);
        long memory = (body.MemoryMib ?? 256) << 20;
        if (body.MemoryMib is < 16 or > 3072) throw new ClusterException("memory_mib must be 16 to 3072", 400);
        var arguments = new List<string> { body.Program };
        arguments.AddRange(body.Arguments ?? []);
        return new VmSpec(body.Program, arguments, body.Environment ?? [], memory, "") { Expose = ParseExpose(body.Expose) };
    }

    /// <summary>GUESTPORT[:HOSTPORT] list: ports 1-65535, each guest and each host port once.</summary>
    internal static IReadOnlyList<ExposedPort>? ParseExpose(IReadOnlyList<string>? mappings)
    {
        if (mappings is null || mappings.Count == 0) return null;
        var ports = new List<ExposedPort>();
        foreach (string mapping in mappings)
        {
            string[] parts = mapping.Split(':');
            static int? Port(string text) => int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int p) && p is >= 1 and <= 65535 ? p : null;
            int? guest = parts.Length is 1 or 2 ? Port(parts[0]) : null;
            int? host = parts.Length == 2 ? Port(parts[1]) : guest;
            if (guest is null || host is null) throw new ClusterException($"--expose takes GUESTPORT[:HOSTPORT] with ports 1-65535, not '{mapping}'", 400);
            if (ports.Any(p => p.GuestPort == guest || p.HostPort == host)) throw new ClusterException($"--expose {mapping}: that port is exposed twice", 400);
            ports.Add(new ExposedPort(guest.Value, host.Value));
        }
        if (ports.Count > 16) throw new ClusterException("at most 16 exposed ports", 400);
        return ports;
    }

    private static VmBody ToBody(Cluster.Vms.VmView view) => new(
        view.Placement.Vm, view.Placement.Epoch, view.Placement.Primary, view.Placement.Replicas, view.Placement.ImageHash,
        view.Placement.Spec?.ProgramPath ?? "", view.Placement.Spec?.Arguments ?? [], view.Role, view.State, view.Error, view.Exits, view.LogBytes,
        view.Replicas.Select(r => new ReplicaBody(r.NodeId, r.State, r.ReplayedExits, r.ReceivedBytes, r.LagExits, r.LagMs < 0 ? null : r.LagMs, r.Live)).ToList())
    {
        LogStart = view.LogStart,
        CheckpointOffset = view.CheckpointOffset,
    };

    private static StatusBody ToBody(NodeStatus status) => new(
        status.NodeId, status.Address, status.Site, status.InCluster, status.RaftState, status.Leader, status.Term, status.CommitIndex,
        status.Voters, status.Learners, status.Members.Select(ToBody).ToList(), Version);

    private static PeerBody ToBody(MemberView member) => new(
        member.Id, member.Address, member.Site, member.Status, member.State, member.Cores, member.MemoryBytes, member.Raft,
        member.LastSeenMsAgo, member.RoundTripMs, member.Self);
}
