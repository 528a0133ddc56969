using System.Text;
using P2PReplay.Control;

namespace P2PReplay.Tests.Control;

public sealed class HttpRequestParserTests
{
    private static (string Method, string Path, Dictionary<string, string> Headers, int ContentLength) Parse(string text)
    {
        byte[] bytes = Encoding.ASCII.GetBytes(text);
        int end = HttpRequestParser.FindHeaderEnd(bytes);
        Assert.True(end > 0);
        return HttpRequestParser.ParseHead(bytes.AsSpan(0, end));
    }

    [Fact]
    public void Parses_a_curl_request()
    {
        var (method, path, headers, length) = Parse("GET /v1/status?verbose=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");
        Assert.Equal("GET", method);
        Assert.Equal("/v1/status", path);
        Assert.Equal("localhost", headers["host"]);
        Assert.Equal(0, length);
    }

    [Fact]
    public void Reads_content_length()
    {
        var (_, _, _, length) = Parse("POST /v1/cluster/join HTTP/1.1\r\nContent-Length: 42\r\n\r\n");
        Assert.Equal(42, length);
    }

    [Theory]
    [InlineData("GET /v1/status\r\n\r\n", 400)]
    [InlineData("GET v1/status HTTP/1.1\r\n\r\n", 400)]
    [InlineData("GET /v1/status HTTP/2.0\r\n\r\n", 400)]
    [InlineData("get /v1/status HTTP/1.1\r\n\r\n", 400)]
    [InlineData("GET /v1/status HTTP/1.1\r\nNoColon\r\n\r\n", 400)]
    [InlineData("GET /v1/status HTTP/1.1\r\nBad Name: x\r\n\r\n", 400)]
    [InlineData("POST /v1/x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400)]
    [InlineData("POST /v1/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400)]
    [InlineData("POST /v1/x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413)]
    [InlineData("POST /v1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411)]
    [InlineData("GET /v1/\u0001 HTTP/1.1\r\n\r\n", 400)]
    public void Refuses_malformed_requests_with_the_right_status(string text, int status)
    {
        var e = Assert.Throws<HttpFormatException>(() => Parse(text));
        Assert.Equal(status, e.Status);
    }

    [Fact]
    public void Refuses_endless_headers()
    {
        byte[] bytes = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n" + new string('a', HttpRequestParser.MaxHeaderBytes + 10));
        Assert.Equal(431, Assert.Throws<HttpFormatException>(() => HttpRequestParser.FindHeaderEnd(bytes)).Status);
    }

    [Fact]
    public void Fuzzed_requests_throw_only_format_errors()
    {
        var random = new Random(4711);
        byte[] valid = Encoding.ASCII.GetBytes("POST /v1/cluster/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n");
        for (int round = 0; round < 20_000; round++)
        {
            byte[] mutated = (byte[])valid.Clone();
            int flips = random.Next(1, 6);
            for (int f = 0; f < flips; f++) mutated[random.Next(mutated.Length)] = (byte)random.Next(256);
            if (random.Next(4) == 0) mutated = mutated[..random.Next(mutated.Length)];
            try
            {
                int end = HttpRequestParser.FindHeaderEnd(mutated);
                if (end > 0) HttpRequestParser.ParseHead(mutated.AsSpan(0, end));
            }
            catch (HttpFormatException)
            {
            }
        }
    }
}
