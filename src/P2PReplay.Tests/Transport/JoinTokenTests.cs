using P2PReplay.Transport;

namespace P2PReplay.Tests.Transport;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class JoinTokenTests
{
    [Fact]
    public void Token_round_trips()
    {
        var token = new JoinToken(TestNodes.Secret, ["10.0.0.5:7400", "node-b.lan:7400", "[fe80::1]:9"]);
        string text = token.Encode();
        Assert.StartsWith("p2p1.", text, StringComparison.Ordinal);
        JoinToken parsed = JoinToken.Parse(text);
        Assert.True(parsed.Secret.SameAs(TestNodes.Secret));
        Assert.Equal(token.Seeds, parsed.Seeds);
        Assert.Empty(JoinToken.Parse(new JoinToken(TestNodes.Secret, []).Encode()).Seeds);
        Assert.Equal(text, token.ToString()); // Cluster/ClusterNode relies on ToString()
    }

    [Theory]
    [InlineData("", "must start with")]
    [InlineData("p2p2.AAAA", "must start with")]
    [InlineData("p2p1.!!!!", "base64url")]
    [InlineData("p2p1.AAAA", "truncated")]
    public void Malformed_tokens_are_refused_with_a_clear_message(string text, string expected)
    {
        var error = Assert.Throws<FormatException>(() => JoinToken.Parse(text));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_or_damaged_token_fails_the_checksum()
    {
        string text = new JoinToken(TestNodes.Secret, ["10.0.0.5:7400"]).Encode();
        Assert.Contains("checksum", Assert.Throws<FormatException>(() => JoinToken.Parse(text[..(5 + (((text.Length - 5) / 4) - 1) * 4)])).Message, StringComparison.Ordinal);
        char[] damaged = text.ToCharArray();
        damaged[20] = damaged[20] == 'A' ? 'B' : 'A';
        Assert.Contains("checksum", Assert.Throws<FormatException>(() => JoinToken.Parse(new string(damaged))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fuzzed_tokens_only_raise_format_exceptions()
    {
        string text = new JoinToken(TestNodes.Secret, ["10.0.0.5:7400", "b:1"]).Encode();
        var random = new Random(7);
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
        for (int i = 0; i < 5000; i++)
        {
            char[] chars = text.ToCharArray();
            int edits = random.Next(1, 4);
            for (int e = 0; e < edits; e++) chars[random.Next(chars.Length)] = alphabet[random.Next(alphabet.Length)];
            string mutated = new string(chars)[..random.Next(chars.Length / 2, chars.Length + 1)];
            try
            {
                JoinToken.Parse(mutated);
            }
            catch (FormatException)
            {
            }
        }

        // Structure-aware: valid checksum over mutated bodies exercises the field parser.
        for (int i = 0; i < 5000; i++)
        {
            byte[] body = System.Buffers.Text.Base64Url.DecodeFromChars(text.AsSpan(5))[..^4];
            byte[] mutated = HandshakeTests.Mutate(body, random);
            byte[] sum = System.Security.Cryptography.SHA256.HashData(mutated)[..4];
            try
            {
                JoinToken.Parse("p2p1." + System.Buffers.Text.Base64Url.EncodeToString([.. mutated, .. sum]));
            }
            catch (FormatException)
            {
            }
        }
    }

    [Fact]
    public void Cluster_secret_saves_0600_and_loads()
    {
        string dir = Directory.CreateTempSubdirectory("p2p-secret-").FullName;
        try
        {
            Assert.Null(ClusterSecret.Load(dir));
            ClusterSecret secret = ClusterSecret.Create();
            secret.Save(dir);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, ClusterSecret.FileName)));
            Assert.True(ClusterSecret.Load(dir)!.SameAs(secret));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
