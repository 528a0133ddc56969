using System.Net;
using P2PReplay.Daemon;

namespace P2PReplay.Tests.Daemon;

public sealed class DaemonConfigTests
{
    [Fact]
    public void Defaults_match_the_documented_paths()
    {
        var config = new DaemonConfig();
        Assert.Equal("/var/lib/p2preplay", config.DataDir);
        Assert.Equal("/run/p2preplay/p2preplay.sock", config.ControlSocket);
        Assert.Equal(Convert.ToInt32("660", 8), (int)config.ControlSocketMode);
        Assert.Equal(DaemonConfig.DefaultPeerPort, config.Listen.Port);
        Assert.True(config.Mdns);
    }

    [Fact]
    public void Parses_every_key()
    {
        var config = DaemonConfig.Parse("""
            # comment
            data_dir = /tmp/a
            control_socket = /tmp/a/s.sock
            control_socket_mode = 0600
            listen = 127.0.0.1:9000
            advertise = node1.example.org:9000
            site = lab-3
            seeds = 10.0.0.1:7410, [fd00::1]:7410 ,peer.example.org:1
            mdns = off
            tick_ms = 50
            """, "test.conf");
        Assert.Equal("/tmp/a", config.DataDir);
        Assert.Equal("/tmp/a/s.sock", config.ControlSocket);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, config.ControlSocketMode);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 9000), config.Listen);
        Assert.Equal("node1.example.org:9000", config.Advertise);
        Assert.Equal("lab-3", config.Site);
        Assert.Equal(["10.0.0.1:7410", "[fd00::1]:7410", "peer.example.org:1"], config.Seeds);
        Assert.False(config.Mdns);
        Assert.Equal(50, config.TickMilliseconds);
    }

    [Theory]
    [InlineData("nonsense", "test.conf:2: expected `key = value`")]
    [InlineData("colour = blue", "test.conf:2: unknown setting 'colour'")]
    [InlineData("data_dir = relative/path", "test.conf:2: data_dir must be an absolute path")]
    [InlineData("listen = 0.0.0.0", "test.conf:2: listen must be IP:PORT")]
    [InlineData("seeds = host-without-port", "test.conf:2: seeds: 'host-without-port' is not host:port")]
    [InlineData("seeds = a:99999", "is not host:port")]
    [InlineData("mdns = maybe", "mdns must be on or off")]
    [InlineData("control_socket_mode = 0066", "must let the owner read and write")]
    [InlineData("control_socket_mode = 999", "must be octal")]
    [InlineData("site = two words", "site must be")]
    [InlineData("tick_ms = 0", "tick_ms must be a whole number")]
    public void Bad_lines_are_named(string line, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => DaemonConfig.Parse("# first\n" + line + "\n", "test.conf"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_key_set_twice_is_an_error()
    {
        Assert.Contains("set twice", Assert.Throws<ConfigException>(() => DaemonConfig.Parse("site = a\nsite = b", "x")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_packaged_default_config_parses_to_the_defaults()
    {
        string text = File.ReadAllText(Path.Combine(Support.Repo.Root, "packaging", "p2preplay.conf"));
        var config = DaemonConfig.Parse(text, "p2preplay.conf");
        var defaults = new DaemonConfig();
        Assert.Equal(defaults.DataDir, config.DataDir);
        Assert.Equal(defaults.ControlSocket, config.ControlSocket);
        Assert.Equal(defaults.Listen, config.Listen);
        Assert.True(config.Mdns);
    }

    [Fact]
    public void Systemd_notify_sends_a_datagram()
    {
        string path = Path.Combine(Path.GetTempPath(), $"p2p-notify-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");
        using var receiver = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        receiver.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
        try
        {
            var notifier = new SystemdNotifier(path);
            Assert.True(notifier.Notify("READY=1\nSTATUS=serving"));
            byte[] buffer = new byte[256];
            int read = receiver.Receive(buffer);
            Assert.Equal("READY=1\nSTATUS=serving", System.Text.Encoding.UTF8.GetString(buffer, 0, read));
            Assert.False(new SystemdNotifier(null).Notify("READY=1"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
