using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace P2PReplay.Control;

/// <summary>A route's handler: the request, the values of its {placeholders}, cancellation.</summary>
internal delegate Task<HttpResponse> RouteHandler(HttpRequest request, IReadOnlyDictionary<string, string> values, CancellationToken cancel);

/// <summary>Maps a method and a versioned path template ("/v1/vms/{name}") to a handler.</summary>
internal sealed class ControlRouter
{
    private readonly List<(string Method, string[] Segments, RouteHandler Handler)> routes = [];

    public ControlRouter Map(string method, string template, RouteHandler handler)
    {
        routes.Add((method, template.Trim('/').Split('/'), handler));
        return this;
    }

    public Task<HttpResponse> DispatchAsync(HttpRequest request, CancellationToken cancel)
    {
        string[] segments = request.Path.Trim('/').Split('/');
        bool pathMatched = false;
        foreach (var (method, template, handler) in routes)
        {
            var values = Match(template, segments);
            if (values is null) continue;
            pathMatched = true;
            if (method == request.Method) return handler(request, values, cancel);
        }
        return Task.FromResult(pathMatched
            ? Error(405, $"{request.Method} is not allowed on {request.Path}")
            : Error(404, $"no such endpoint: {request.Path}"));
    }

    private static Dictionary<string, string>? Match(string[] template, string[] segments)
    {
        if (template.Length != segments.Length) return null;
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < template.Length; i++)
        {
            if (template[i].StartsWith('{') && template[i].EndsWith('}'))
            {
                string value = Uri.UnescapeDataString(segments[i]);
                if (value.Length == 0) return null;
                values[template[i][1..^1]] = value;
            }
            else if (template[i] != segments[i])
            {
                return null;
            }
        }
        return values;
    }

    public static HttpResponse Json<T>(int status, T body, JsonTypeInfo<T> type) => new(status, JsonSerializer.SerializeToUtf8Bytes(body, type));

    public static HttpResponse Error(int status, string message) => Json(status, new ErrorBody(message), ControlJsonContext.Default.ErrorBody);

    /// <summary>Reads a JSON request body, or throws an HttpFormatException(400) that says what is wrong.</summary>
    public static T ReadBody<T>(HttpRequest request, JsonTypeInfo<T> type)
    {
        if (request.Body.Length == 0) throw new HttpFormatException(400, "this endpoint needs a JSON body");
        try
        {
            return JsonSerializer.Deserialize(request.Body, type) ?? throw new HttpFormatException(400, "the JSON body is null");
        }
        catch (JsonException e)
        {
            throw new HttpFormatException(400, $"malformed JSON body: {e.Message}");
        }
    }
}
