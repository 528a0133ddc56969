using P2PReplay.Consensus;
using P2PReplay.Consensus.Storage;

namespace P2PReplay.Tests.Consensus;

public sealed class FileRaftStorageTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "p2preplay-raft-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    private string Dir(string name = "node") => Path.Combine(root, name);

    private static Entry[] Entries(ulong from, ulong to, ulong term) => [.. Enumerable.Range((int)from, (int)(to - from + 1)).Select(i => new Entry(term, (ulong)i, EntryType.Normal, [(byte)i, (byte)term, 0xAB]))];

    private static void AssertSameLog(IRaftStorage expected, IRaftStorage actual)
    {
        Assert.Equal(expected.FirstIndex, actual.FirstIndex);
        Assert.Equal(expected.LastIndex, actual.LastIndex);
        Assert.Equal(expected.Snapshot.Metadata, actual.Snapshot.Metadata);
        Assert.Equal(expected.InitialState().HardState, actual.InitialState().HardState);
        var a = expected.Entries(expected.FirstIndex, expected.LastIndex + 1);
        var b = actual.Entries(actual.FirstIndex, actual.LastIndex + 1);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal((a[i].Term, a[i].Index, a[i].Type), (b[i].Term, b[i].Index, b[i].Type));
            Assert.Equal(a[i].Data, b[i].Data);
        }
    }

    [Fact]
    public void Restart_reproduces_state()
    {
        var memory = new MemoryRaftStorage();
        using (var file = new FileRaftStorage(Dir()))
        {
            foreach (IRaftStorage storage in new IRaftStorage[] { memory, file })
            {
                storage.Save(new HardState(1, 2, 0), Entries(1, 5, 1), null);
                storage.Save(new HardState(2, 3, 3), Entries(4, 6, 2), null); // conflicting suffix 4..5 replaced
                storage.Save(null, [new Entry(2, 7, EntryType.ConfChange, new ConfChange(ConfChangeType.AddLearner, 9).Encode())], null);
                storage.Compact(new Snapshot(new SnapshotMetadata(3, 1, new ConfState([1, 2, 3], [])), [1, 2, 3]));
                storage.Save(new HardState(2, 3, 7), Entries(8, 9, 2), null);
            }
            AssertSameLog(memory, file);
        }
        using var reopened = new FileRaftStorage(Dir());
        AssertSameLog(memory, reopened);
        Assert.Equal(new HardState(2, 3, 7), reopened.InitialState().HardState);
        Assert.Equal([1UL, 2, 3], reopened.InitialState().ConfState.Voters);
        Assert.Equal(2UL, reopened.Term(4));
        Assert.Equal(1UL, reopened.Term(3));
        Assert.Null(reopened.Term(2));
    }

    [Fact]
    public void Installing_a_mismatching_snapshot_replaces_the_log()
    {
        using (var file = new FileRaftStorage(Dir()))
        {
            file.Save(new HardState(1, 1, 2), Entries(1, 5, 1), null);
            file.Save(new HardState(3, 0, 8), [], new Snapshot(new SnapshotMetadata(8, 3, new ConfState([1], [])), [7]));
            Assert.Equal(9UL, file.FirstIndex);
            Assert.Equal(8UL, file.LastIndex);
            file.Save(null, Entries(9, 10, 3), null);
        }
        using var reopened = new FileRaftStorage(Dir());
        Assert.Equal(10UL, reopened.LastIndex);
        Assert.Equal(8UL, reopened.Snapshot.Metadata.Index);
        Assert.Equal([7], reopened.Snapshot.Data);
    }

    [Fact]
    public void Crash_at_every_byte_of_the_last_record_recovers_the_previous_records()
    {
        string source = Dir("source");
        using (var file = new FileRaftStorage(source))
        {
            file.Save(new HardState(1, 1, 0), Entries(1, 4, 1), null);
        }
        long before = new FileInfo(Path.Combine(source, "log")).Length;
        using (var file = new FileRaftStorage(source))
        {
            file.Save(null, [new Entry(1, 5, EntryType.Normal, new byte[40])], null);
        }
        byte[] full = File.ReadAllBytes(Path.Combine(source, "log"));
        for (long cut = before; cut < full.Length; cut++)
        {
            string copy = Dir($"cut{cut}");
            Directory.CreateDirectory(copy);
            File.Copy(Path.Combine(source, "hardstate"), Path.Combine(copy, "hardstate"));
            File.WriteAllBytes(Path.Combine(copy, "log"), full[..(int)cut]);
            using (var recovered = new FileRaftStorage(copy))
            {
                Assert.Equal(4UL, recovered.LastIndex);
                // The torn tail is gone: appending again yields a clean log.
                recovered.Save(null, Entries(5, 6, 2), null);
            }
            using var again = new FileRaftStorage(copy);
            Assert.Equal(6UL, again.LastIndex);
            Assert.Equal(2UL, again.Term(5));
            Assert.Equal(1UL, again.Term(4));
        }
    }

    [Fact]
    public void Garbage_in_the_last_record_is_treated_as_torn()
    {
        using (var file = new FileRaftStorage(Dir()))
        {
            file.Save(null, Entries(1, 3, 1), null);
        }
        string log = Path.Combine(Dir(), "log");
        byte[] bytes = File.ReadAllBytes(log);
        bytes[^1] ^= 0xFF;
        File.WriteAllBytes(log, bytes);
        using var recovered = new FileRaftStorage(Dir());
        Assert.Equal(2UL, recovered.LastIndex);
    }

    [Fact]
    public void Any_bit_flip_in_a_middle_record_is_refused_naming_file_and_offset()
    {
        using (var file = new FileRaftStorage(Dir()))
        {
            file.Save(new HardState(1, 1, 0), Entries(1, 5, 1), null);
        }
        string log = Path.Combine(Dir(), "log");
        byte[] original = File.ReadAllBytes(log);
        int recordSize = original.Length / 5;
        for (int record = 0; record < 4; record++)
        {
            int offset = record * recordSize;
            for (int bit = 0; bit < recordSize * 8; bit++)
            {
                byte[] bytes = (byte[])original.Clone();
                bytes[offset + bit / 8] ^= (byte)(1 << (bit % 8));
                File.WriteAllBytes(log, bytes);
                var error = Assert.Throws<InvalidDataException>(() => new FileRaftStorage(Dir()));
                Assert.Contains(log, error.Message, StringComparison.Ordinal);
                Assert.Contains($"offset {offset}", error.Message, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void A_corrupt_hard_state_is_refused()
    {
        using (var file = new FileRaftStorage(Dir()))
        {
            file.Save(new HardState(4, 1, 0), [], null);
        }
        string path = Path.Combine(Dir(), "hardstate");
        byte[] bytes = File.ReadAllBytes(path);
        bytes[10] ^= 0x10;
        File.WriteAllBytes(path, bytes);
        var error = Assert.Throws<InvalidDataException>(() => new FileRaftStorage(Dir()));
        Assert.Contains("hardstate", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_crash_between_snapshot_and_log_rewrite_recovers()
    {
        using (var file = new FileRaftStorage(Dir()))
        {
            file.Save(new HardState(1, 1, 5), Entries(1, 6, 1), null);
        }
        byte[] oldLog = File.ReadAllBytes(Path.Combine(Dir(), "log"));
        using (var file = new FileRaftStorage(Dir()))
        {
            file.Compact(new Snapshot(new SnapshotMetadata(4, 1, new ConfState([1], [])), [4]));
        }
        // Simulate the rename of the rewritten log never happening.
        File.WriteAllBytes(Path.Combine(Dir(), "log"), oldLog);
        using var recovered = new FileRaftStorage(Dir());
        Assert.Equal(5UL, recovered.FirstIndex);
        Assert.Equal(6UL, recovered.LastIndex);
    }

    /// <summary>Random saves, truncations, snapshots, compactions and reopenings: the file storage behaves like the memory model.</summary>
    [Fact]
    public void Behaves_like_the_memory_model_across_reopens()
    {
        var random = new Random(77);
        var model = new MemoryRaftStorage();
        var file = new FileRaftStorage(Dir());
        ulong term = 1;
        for (int op = 0; op < 400; op++)
        {
            switch (random.Next(10))
            {
                case < 6:
                    {
                        ulong start = model.FirstIndex + (ulong)random.Next((int)(model.LastIndex - model.FirstIndex + 2));
                        if (random.Next(3) == 0) term++;
                        Entry[] entries = [.. Enumerable.Range(0, 1 + random.Next(5)).Select(i => new Entry(term, start + (ulong)i, random.Next(4) == 0 ? EntryType.ConfChange : EntryType.Normal, random.Next(4) == 0 ? new ConfChange(ConfChangeType.AddLearner, (ulong)random.Next(1, 9)).Encode() : [(byte)op, (byte)i]))];
                        HardState? hs = random.Next(2) == 0 ? new HardState(term, (ulong)random.Next(4), model.FirstIndex - 1) : null;
                        model.Save(hs, entries, null);
                        file.Save(hs, entries, null);
                        break;
                    }
                case 6 when model.LastIndex > model.FirstIndex:
                    {
                        ulong index = model.FirstIndex + (ulong)random.Next((int)(model.LastIndex - model.FirstIndex));
                        var snapshot = new Snapshot(new SnapshotMetadata(index, model.Term(index)!.Value, new ConfState([1, (ulong)op + 2], [])), [(byte)op]);
                        model.Compact(snapshot);
                        file.Compact(snapshot);
                        break;
                    }
                case 7:
                    {
                        // A leader's snapshot, matching our log or not.
                        ulong index = model.Snapshot.Metadata.Index + (ulong)random.Next(1, 8);
                        ulong snapshotTerm = random.Next(2) == 0 && model.Term(index) is { } t ? t : ++term;
                        var snapshot = new Snapshot(new SnapshotMetadata(index, snapshotTerm, new ConfState([1, 2, 3], [(ulong)op + 10])), [1, 2]);
                        model.Save(null, [], snapshot);
                        file.Save(null, [], snapshot);
                        break;
                    }
                default:
                    file.Dispose();
                    file = new FileRaftStorage(Dir());
                    break;
            }
            AssertSameLog(model, file);
            Assert.Equal(model.InitialState().ConfState, file.InitialState().ConfState);
        }
        file.Dispose();
    }
}
