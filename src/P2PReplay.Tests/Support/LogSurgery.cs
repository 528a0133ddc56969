using P2PReplay.Replay;
using P2PReplay.Replay.Format;

namespace P2PReplay.Tests.Support;

/// <summary>Rewrites recordings record by record, for tamper tests (chunks are rebuilt with valid checksums).</summary>
public static class LogSurgery
{
    public static byte[] RewriteFirstEvent(byte[] log, InputKind kind, Func<InputEvent, InputEvent> change)
    {
        bool done = false;
        return Rewrite(log, (record, write) =>
        {
            if (!done && record.Kind == LogRecordKind.Event && InputEvent.Decode(record.Payload.Span) is var e && e.Kind == kind)
            {
                done = true;
                var w = new ByteWriter();
                change(e).Encode(w);
                write(record.Kind, w.Written.ToArray());
                return;
            }
            write(record.Kind, record.Payload.ToArray());
        });
    }

    public static byte[] DropEvents(byte[] log, InputKind kind) => Rewrite(log, (record, write) =>
    {
        if (record.Kind == LogRecordKind.Event && InputEvent.Decode(record.Payload.Span).Kind == kind) return;
        write(record.Kind, record.Payload.ToArray());
    });

    /// <summary>Applies random record-level damage (payload bytes changed, records dropped, duplicated or swapped); the header stays intact.</summary>
    public static byte[] Mutate(byte[] log, Random random)
    {
        var records = new List<(byte Kind, byte[] Payload)>();
        using (var reader = new LogReader(new MemoryStream(log)))
        {
            while (reader.TryRead(out var record)) records.Add((record.Kind, record.Payload.ToArray()));
        }
        int changes = random.Next(1, 4);
        for (int c = 0; c < changes && records.Count > 2; c++)
        {
            int i = random.Next(1, records.Count);
            switch (random.Next(4))
            {
                case 0 when records[i].Payload.Length > 0:
                    records[i].Payload[random.Next(records[i].Payload.Length)] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    records.RemoveAt(i);
                    break;
                case 2:
                    records.Insert(i, records[i]);
                    break;
                default:
                    int j = random.Next(1, records.Count);
                    (records[i], records[j]) = (records[j], records[i]);
                    break;
            }
        }
        var output = new MemoryStream();
        using (var writer = new LogWriter(output))
        {
            foreach (var (kind, payload) in records) writer.Append(kind, payload);
        }
        return output.ToArray();
    }

    public static int ChunkCount(byte[] log)
    {
        using var reader = new LogReader(new MemoryStream(log));
        while (reader.TryRead(out _))
        {
        }
        return reader.ChunksRead;
    }

    private static byte[] Rewrite(byte[] log, Action<LogRecord, Action<byte, byte[]>> edit)
    {
        var output = new MemoryStream();
        using (var reader = new LogReader(new MemoryStream(log)))
        using (var writer = new LogWriter(output))
        {
            while (reader.TryRead(out var record))
            {
                edit(record, (kind, payload) =>
                {
                    if (kind == LogRecordKind.Trailer) writer.Complete(kind, payload);
                    else writer.Append(kind, payload);
                });
            }
        }
        return output.ToArray();
    }
}
