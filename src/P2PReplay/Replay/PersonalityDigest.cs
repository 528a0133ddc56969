using System.Buffers.Binary;
using System.IO.Hashing;
using P2PReplay.Linux;
using P2PReplay.Linux.FileSystem;

namespace P2PReplay.Replay;

/// <summary>
/// A hash of the personality's state: memory map and page protections, program break, open files, the writable
/// layer of the file system, signal dispositions, identity. It only reads: nothing here may load directories or
/// otherwise change what the guest will see.
/// </summary>
public static class PersonalityDigest
{
    public static ulong Compute(LinuxProcess p)
    {
        var hash = new Hasher();

        var space = p.AddressSpace;
        hash.Add(space.BrkStart);
        hash.Add(space.Brk);
        foreach (var (start, end) in space.MappedRanges)
        {
            hash.Add(start);
            hash.Add(end);
            hash.AddBytes(p.Memory.ProtectionBytes(start, end - start));
        }

        foreach (int fd in p.Files.OpenDescriptors())
        {
            var file = p.Files.Get(fd)!;
            hash.Add((ulong)fd);
            hash.Add(p.Files.IsCloseOnExec(fd) ? 1UL : 0);
            hash.Add((ulong)file.Flags);
            hash.AddText(file.GetType().Name);
            hash.Add(file.Node?.Inode ?? 0);
            switch (file)
            {
                case NodeFile node:
                    hash.Add((ulong)node.Position);
                    break;
                case PipeEnd pipe:
                    hash.Add(pipe.Pipe.Inode);
                    hash.Add((ulong)pipe.Pipe.Count);
                    hash.Add((ulong)pipe.Pipe.Readers);
                    hash.Add((ulong)pipe.Pipe.Writers);
                    break;
                case Linux.Net.Socket socket:
                    hash.Add(socket.Inode);
                    hash.Add((ulong)socket.State);
                    hash.Add((ulong)socket.BoundPort);
                    hash.Add((ulong)socket.LocalPort);
                    hash.Add((ulong)socket.Connection);
                    hash.Add((ulong)socket.BytesQueued);
                    hash.Add((ulong)socket.PendingConnections);
                    hash.Add((socket.PeerClosed ? 1UL : 0) | (socket.ReadShut ? 2UL : 0) | (socket.WriteShut ? 4UL : 0));
                    break;
                case Linux.Net.EpollFile epoll:
                    foreach (var entry in epoll.Interest)
                    {
                        hash.Add((ulong)entry.Fd);
                        hash.Add(entry.Events);
                        hash.Add(entry.Data);
                        hash.Add(entry.Disarmed ? 1UL : 0);
                    }
                    break;
            }
        }
        hash.Add(p.Files.CurrentDirectory.Inode);
        hash.Add(p.Umask);

        for (int signal = 1; signal <= Signals.Count; signal++)
        {
            var action = p.Signals.Get(signal);
            hash.Add(action.Handler);
            hash.Add(action.Flags);
            hash.Add(action.Restorer);
            hash.Add(action.Mask);
        }
        hash.Add(p.Signals.BlockedMask);
        hash.Add(p.Signals.PendingMask);
        hash.AddBytes(p.Name);
        hash.Add(p.ClearChildTid);

        AddTree(hash, p.FileSystem.Root);
        return hash.Value;
    }

    private sealed class Hasher
    {
        private readonly XxHash64 _hash = new();
        private readonly byte[] _word = new byte[8];

        public ulong Value => _hash.GetCurrentHashAsUInt64();

        public void Add(ulong value)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_word, value);
            _hash.Append(_word);
        }

        public void AddBytes(ReadOnlySpan<byte> bytes)
        {
            Add((ulong)bytes.Length);
            _hash.Append(bytes);
        }

        public void AddText(string text) => AddBytes(System.Text.Encoding.UTF8.GetBytes(text));
    }

    private static void AddTree(Hasher hash, FsNode node)
    {
        hash.Add((ulong)node.Kind);
        hash.Add(node.Inode);
        hash.Add(node.Permissions);
        hash.Add(node.Uid);
        hash.Add(node.Gid);
        hash.Add((ulong)node.AccessTime);
        hash.Add((ulong)node.ModifyTime);
        hash.Add((ulong)node.ChangeTime);
        hash.Add((ulong)node.LinkCount);
        if (node.SymlinkTarget is { } target) hash.AddText(target);
        if (node.Data is { } data)
        {
            hash.Add((ulong)data.Length);
            if (!data.IsImage)
            {
                // Layer contents; image contents are fixed by the image hash in the header.
                var buffer = new byte[64 * 1024];
                for (long offset = 0; offset < data.Length;)
                {
                    long read = data.Read(buffer, offset);
                    if (read <= 0) break;
                    hash.AddBytes(buffer.AsSpan(0, (int)read));
                    offset += read;
                }
            }
        }
        foreach (var (name, child) in node.LoadedChildren)
        {
            hash.AddText(name);
            AddTree(hash, child);
        }
    }
}
