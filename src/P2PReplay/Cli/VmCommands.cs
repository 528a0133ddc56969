using System.Globalization;
using System.Text;
using System.Text.Json;
using P2PReplay.Control;

namespace P2PReplay.Cli;

/// <summary>`p2preplay vm create|list|show|logs|stop|failover`: clients of the daemon's /v1/vms endpoints.</summary>
internal static class VmCommands
{
    public const string Usage = """
        usage: p2preplay vm create NAME [--replicas N] [--memory MIB] [--env K=V]... [--expose GUESTPORT[:HOSTPORT]]...
                                 [--image DIR] [--socket PATH] -- PROGRAM [ARGS...]
                 (--image DIR: the VM's root filesystem, copied to every node by its content hash; PROGRAM is a path in it)
               p2preplay vm list [--json] [--socket PATH]
               p2preplay vm show NAME [--json] [--socket PATH]
               p2preplay vm logs NAME [--socket PATH]
               p2preplay vm stop NAME [--socket PATH]
               p2preplay vm failover NAME [--to NODE] [--socket PATH]
        """;

    /// <summary>With --image the program is a path inside the image ("/bin/app" or "bin/app"); a host path into the image directory is made relative to it.</summary>
    internal static string InImage(string image, string program)
    {
        string full = Path.GetFullPath(program);
        string prefix = image.TrimEnd('/') + "/";
        return full.StartsWith(prefix, StringComparison.Ordinal) && File.Exists(full) ? "/" + full[prefix.Length..] : "/" + program.TrimStart('/');
    }

    public static int Execute(ReadOnlySpan<string> arguments)
    {
        string[] args = arguments.ToArray();
        if (args.Length == 0) throw new UsageException(Usage);
        string socket = ControlClient.SocketFromEnvironment();
        bool json = false;
        int replicas = 2;
        long? memory = null;
        var environment = new List<string>();
        var expose = new List<string>();
        string? image = null;
        var positional = new List<string>();
        string? to = null;
        string[] program = [];
        for (int i = 1; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{args[i]} needs a value\n{Usage}");
            switch (args[i])
            {
                case "--": program = args[(i + 1)..]; i = args.Length; break;
                case "--json": json = true; break;
                case "--socket": socket = Value(); break;
                case "--replicas": replicas = int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out int r) ? r : throw new UsageException("--replicas needs a number"); break;
                case "--memory": memory = long.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out long m) ? m : throw new UsageException("--memory needs a size in MiB"); break;
                case "--env": environment.Add(Value()); break;
                case "--expose": expose.Add(Value()); break;
                case "--image": image = Path.GetFullPath(Value()); break;
                case "--to": to = Value(); break;
                case var other when other.StartsWith('-'): throw new UsageException($"unknown option '{other}'\n{Usage}");
                default: positional.Add(args[i]); break;
            }
        }
        using var client = new ControlClient(socket);
        try
        {
            switch (args[0], positional.Count)
            {
                case ("create", 1):
                    if (program.Length == 0) throw new UsageException($"vm create needs `-- PROGRAM [ARGS...]`\n{Usage}");
                    var create = new VmCreateBody(positional[0], replicas, image is null ? Path.GetFullPath(program[0]) : InImage(image, program[0]), program[1..], environment, memory)
                    {
                        Expose = expose.Count > 0 ? expose : null,
                        Image = image,
                    };
                    var created = client.PostAsync("/v1/vms", create, ControlJsonContext.Default.VmCreateBody, ControlJsonContext.Default.VmBody).GetAwaiter().GetResult();
                    Console.Out.Write(json ? JsonSerializer.Serialize(created, ControlJsonContext.Default.VmBody) + "\n"
                        : $"created {created.Name}: primary {created.Primary}, replicas {string.Join(", ", created.Replicas)}, epoch {created.Epoch}\n");
                    return 0;
                case ("list", 0):
                    var list = client.GetAsync("/v1/vms", ControlJsonContext.Default.ListVmBody).GetAwaiter().GetResult();
                    Console.Out.Write(json ? JsonSerializer.Serialize(list, ControlJsonContext.Default.ListVmBody) + "\n" : FormatList(list));
                    return 0;
                case ("show", 1):
                    var vm = client.GetAsync($"/v1/vms/{Uri.EscapeDataString(positional[0])}", ControlJsonContext.Default.VmBody).GetAwaiter().GetResult();
                    Console.Out.Write(json ? JsonSerializer.Serialize(vm, ControlJsonContext.Default.VmBody) + "\n" : FormatShow(vm));
                    return 0;
                case ("logs", 1):
                    using (var stdout = Console.OpenStandardOutput())
                    {
                        stdout.Write(client.GetBytesAsync($"/v1/vms/{Uri.EscapeDataString(positional[0])}/logs").GetAwaiter().GetResult());
                    }
                    return 0;
                case ("stop", 1):
                    client.DeleteAsync($"/v1/vms/{Uri.EscapeDataString(positional[0])}", ControlJsonContext.Default.ErrorBody).GetAwaiter().GetResult();
                    Console.Out.WriteLine($"stopped {positional[0]}");
                    return 0;
                case ("failover", 1):
                    var moved = client.PostAsync($"/v1/vms/{Uri.EscapeDataString(positional[0])}/failover", new VmFailoverBody(to), ControlJsonContext.Default.VmFailoverBody, ControlJsonContext.Default.VmBody).GetAwaiter().GetResult();
                    Console.Out.Write(json ? JsonSerializer.Serialize(moved, ControlJsonContext.Default.VmBody) + "\n"
                        : $"switched {moved.Name} over: primary {moved.Primary}, replicas {string.Join(", ", moved.Replicas)}, epoch {moved.Epoch}\n");
                    return 0;
                default:
                    throw new UsageException(Usage);
            }
        }
        catch (ControlException e)
        {
            Console.Error.WriteLine($"p2preplay: {e.Message}");
            return AdminCommands.DaemonError;
        }
    }

    private static string FormatList(IReadOnlyList<VmBody> vms)
    {
        var text = new StringBuilder("NAME              EPOCH  PRIMARY           REPLICAS  STATE (this node's copy)\n");
        foreach (var vm in vms)
            text.Append(CultureInfo.InvariantCulture, $"{vm.Name,-17} {vm.Epoch,5}  {vm.Primary,-16}  {vm.Replicas.Count,8}  {vm.Role}: {vm.State}\n");
        return text.ToString();
    }

    private static string FormatShow(VmBody vm)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"vm        {vm.Name}, epoch {vm.Epoch}\n");
        text.Append(CultureInfo.InvariantCulture, $"program   {string.Join(' ', vm.Arguments)} (sha256 {vm.ImageHash})\n");
        text.Append(CultureInfo.InvariantCulture, $"primary   {vm.Primary}\n");
        text.Append(CultureInfo.InvariantCulture, $"replicas  {string.Join(", ", vm.Replicas)}\n");
        text.Append(CultureInfo.InvariantCulture, $"here      {vm.Role}: {vm.State}{(vm.Error is null ? "" : $" ({vm.Error})")}, {vm.Exits} exits, {vm.LogBytes} log bytes{(vm.LogStart > 0 ? $" (held from byte {vm.LogStart})" : "")}{(vm.CheckpointOffset >= 0 ? $", checkpoint at byte {vm.CheckpointOffset}" : "")}\n");
        foreach (var replica in vm.ReplicaStatus)
        {
            string lag = replica.LagMs is long ms ? $"{replica.LagExits} exits / {ms} ms behind" : $"{replica.LagExits} exits behind";
            text.Append(CultureInfo.InvariantCulture, $"  replica {replica.NodeId}: {replica.State}, replayed {replica.ReplayedExits} exits, received {replica.ReceivedBytes} bytes, {lag}{(replica.Live ? "" : " (not live)")}\n");
        }
        return text.ToString();
    }
}
