using System.Text;

namespace P2PReplay.Control;

/// <summary>One parsed HTTP/1.1 request of the control API.</summary>
internal sealed record HttpRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
}

/// <summary>A response of the control API: a status code and a JSON (or text) body.</summary>
internal sealed record HttpResponse(int Status, byte[] Body, string ContentType = "application/json")
{
    public byte[] Encode()
    {
        string head = $"HTTP/1.1 {Status} {Reason(Status)}\r\nContent-Type: {ContentType}\r\nContent-Length: {Body.Length}\r\nConnection: close\r\n\r\n";
        byte[] bytes = new byte[Encoding.ASCII.GetByteCount(head) + Body.Length];
        int written = Encoding.ASCII.GetBytes(head, bytes);
        Body.CopyTo(bytes, written);
        return bytes;
    }

    public static string Reason(int status) => status switch
    {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    };
}

/// <summary>The bytes are not an acceptable HTTP/1.1 request; Status is the code to answer with.</summary>
internal sealed class HttpFormatException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>
/// Parses one HTTP/1.1 request (RFC 9112) from a byte buffer: request line, headers, a Content-Length body.
/// Strict and bounded, because anyone in the socket's group can send anything.
/// </summary>
internal static class HttpRequestParser
{
    public const int MaxHeaderBytes = 16 * 1024;
    public const int MaxBodyBytes = 1024 * 1024;
    private const int MaxHeaders = 64;

    /// <summary>Returns the length of the header block including the blank line, or -1 if it is not complete yet.</summary>
    public static int FindHeaderEnd(ReadOnlySpan<byte> buffer)
    {
        int end = buffer.IndexOf("\r\n\r\n"u8);
        if (end < 0)
        {
            if (buffer.Length > MaxHeaderBytes) throw new HttpFormatException(431, "request headers are larger than 16 KiB");
            return -1;
        }
        if (end + 4 > MaxHeaderBytes) throw new HttpFormatException(431, "request headers are larger than 16 KiB");
        return end + 4;
    }

    /// <summary>Parses the header block (as located by <see cref="FindHeaderEnd"/>); the body is filled in later.</summary>
    public static (string Method, string Path, Dictionary<string, string> Headers, int ContentLength) ParseHead(ReadOnlySpan<byte> head)
    {
        foreach (byte b in head)
        {
            // RFC 9112 §2.2: header fields are ASCII; control characters other than CR/LF/TAB are not allowed.
            if (b >= 0x7f || (b < 0x20 && b is not (byte)'\r' and not (byte)'\n' and not (byte)'\t'))
                throw new HttpFormatException(400, "the request contains non-ASCII or control bytes");
        }
        string text = Encoding.ASCII.GetString(head);
        string[] lines = text.Split("\r\n");
        string[] requestLine = lines[0].Split(' ');
        if (requestLine.Length != 3) throw new HttpFormatException(400, "malformed request line");
        string method = requestLine[0], target = requestLine[1], version = requestLine[2];
        if (method.Length == 0 || !method.All(char.IsAsciiLetterUpper)) throw new HttpFormatException(400, "malformed method");
        if (version is not ("HTTP/1.1" or "HTTP/1.0")) throw new HttpFormatException(400, $"unsupported protocol version '{version}'");
        if (!target.StartsWith('/')) throw new HttpFormatException(400, "the request target must be an absolute path");

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        int count = 0;
        foreach (string line in lines.AsSpan(1))
        {
            if (line.Length == 0) continue;
            if (++count > MaxHeaders) throw new HttpFormatException(431, "too many header fields");
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || line[..colon].Any(c => c is ' ' or '\t')) throw new HttpFormatException(400, "malformed header field");
            string name = line[..colon];
            string value = line[(colon + 1)..].Trim(' ', '\t');
            if (headers.TryGetValue(name, out var existing))
            {
                if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && existing != value)
                    throw new HttpFormatException(400, "conflicting Content-Length fields");
                headers[name] = existing + ", " + value;
            }
            else
            {
                headers[name] = value;
            }
        }

        if (headers.ContainsKey("Transfer-Encoding")) throw new HttpFormatException(411, "chunked bodies are not supported; send Content-Length");
        int contentLength = 0;
        if (headers.TryGetValue("Content-Length", out var lengthText))
        {
            if (lengthText.Length is 0 or > 9 || !lengthText.All(char.IsAsciiDigit)) throw new HttpFormatException(400, "malformed Content-Length");
            contentLength = int.Parse(lengthText, System.Globalization.CultureInfo.InvariantCulture);
            if (contentLength > MaxBodyBytes) throw new HttpFormatException(413, "the request body is larger than 1 MiB");
        }
        int query = target.IndexOf('?', StringComparison.Ordinal);
        string path = query >= 0 ? target[..query] : target;
        return (method, path, headers, contentLength);
    }
}
