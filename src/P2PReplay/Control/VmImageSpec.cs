using P2PReplay.Cluster;
using P2PReplay.Cluster.Images;

namespace P2PReplay.Control;

/// <summary>`vm create --image DIR`: imports the directory into this daemon's store and pins the VM to its hash.</summary>
internal static class VmImageSpec
{
    /// <summary>The spec of a VM whose program lives inside its image (checked like a create without one, see ControlApi).</summary>
    public static VmSpec Build(VmCreateBody body, IClusterControl node)
    {
        string image = body.Image ?? throw new ClusterException("no image given", 400);
        if (!Path.IsPathFullyQualified(image)) throw new ClusterException($"--image must be an absolute path on the daemon's machine, not {image}", 400);
        string inside = body.Program.TrimStart('/');
        if (ImageRules.CheckPath(inside) is { } bad) throw new ClusterException($"the program must be a path inside the image, not {bad}", 400);
        // The name and the other limits are checked as for a VM without an image.
        var checkedSpec = ControlApi.CheckSpec(body);
        var (hash, root) = node.ImportImage(image);
        byte[] program;
        try
        {
            program = File.ReadAllBytes(Path.Combine(root, inside));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ClusterException($"the image {image} holds no readable program /{inside}: {e.Message}", 400);
        }
        return checkedSpec with { ProgramPath = "/" + inside, ProgramSha256 = Replay.ImageHash.Of(program), ImageHash = hash, ImageSource = node.Status().NodeId };
    }
}
