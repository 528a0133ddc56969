using P2PReplay.Transport;

namespace P2PReplay.Tests.Transport;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class NodeIdentityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("p2p-identity-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Key_file_is_created_0600_and_reloads_to_the_same_node_id()
    {
        string id;
        ulong numeric;
        using (NodeIdentity first = NodeIdentity.LoadOrCreate(_dir))
        {
            id = first.NodeId;
            numeric = first.NumericId;
        }

        string path = Path.Combine(_dir, NodeIdentity.FileName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using NodeIdentity again = NodeIdentity.LoadOrCreate(_dir);
        Assert.Equal(id, again.NodeId);
        Assert.Matches("^[0-9a-f]{16}$", id);
        Assert.Equal(id, numeric.ToString("x16", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void Group_readable_key_is_refused_with_a_clear_message()
    {
        NodeIdentity.LoadOrCreate(_dir).Dispose();
        string path = Path.Combine(_dir, NodeIdentity.FileName);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var error = Assert.Throws<SecretFileException>(() => NodeIdentity.LoadOrCreate(_dir));
        Assert.Contains("chmod 600", error.Message, StringComparison.Ordinal);
        Assert.Contains("0640", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sign_and_verify()
    {
        using NodeIdentity identity = NodeIdentity.Create();
        byte[] data = "hello"u8.ToArray();
        byte[] signature = identity.Sign(data);
        Assert.True(NodeIdentity.Verify(identity.PublicKey, data, signature));
        signature[3] ^= 1;
        Assert.False(NodeIdentity.Verify(identity.PublicKey, data, signature));
        Assert.False(NodeIdentity.Verify(new byte[5], data, signature));
    }
}
