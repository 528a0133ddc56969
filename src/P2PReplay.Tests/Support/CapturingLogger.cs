using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace P2PReplay.Tests.Support;

/// <summary>An ILogger that keeps every line, so tests can assert that a refusal was logged.</summary>
public sealed class CapturingLogger : ILogger
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> lines = new();

    public IReadOnlyList<(LogLevel Level, string Message)> Lines => [.. lines];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        lines.Enqueue((logLevel, formatter(state, exception) + (exception is null ? "" : " " + exception.Message)));

    public bool Contains(string text) => lines.Any(l => l.Message.Contains(text, StringComparison.Ordinal));

    /// <summary>Waits (up to the timeout) until a line containing the text is logged.</summary>
    public async Task<bool> WaitForAsync(string text, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(5));
        while (DateTime.UtcNow < deadline)
        {
            if (Contains(text)) return true;
            await Task.Delay(10);
        }
        return Contains(text);
    }
}
