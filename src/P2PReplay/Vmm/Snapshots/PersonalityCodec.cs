using System.Text;
using P2PReplay.Linux;
using P2PReplay.Linux.Abi;
using P2PReplay.Linux.FileSystem;
using P2PReplay.Linux.Memory;
using P2PReplay.Linux.Net;
using P2PReplay.Replay;

namespace P2PReplay.Vmm.Snapshots;

/// <summary>
/// Writes and reads the Linux personality's state for a VM snapshot: process identity and signals, the memory map and
/// page protections, the file tree (image nodes by host path relative to the image, layer contents by value, which
/// image directories were listed), open descriptions with their positions, pipes, sockets, pending connections, epoll
/// instances, and the virtual network's tables and counters. Object graphs (shared descriptions, hard links, socket
/// pairs) are written as tables with ids. Everything <see cref="PersonalityDigest"/> covers is here, so a restored
/// process has the same digest.
/// </summary>
internal static class PersonalityCodec
{
    private const int MaxCount = 1 << 24;
    private const byte DataNone = 0, DataHost = 1, DataExtra = 2, DataLayer = 3;
    private const byte FileStandard = 1, FileNode = 2, FilePipe = 3, FileSocket = 4, FileEpoll = 5;

    public static byte[] Capture(LinuxProcess p)
    {
        if (p.HasExited) throw new InvalidOperationException("the guest has exited: there is nothing to snapshot");
        var w = new ByteWriter();
        w.Bytes(p.Name);
        w.VarU(p.Umask);
        w.U64(p.ClearChildTid);
        w.VarI(p.LastSyscall);
        for (int signal = 1; signal <= Signals.Count; signal++)
        {
            var a = p.Signals.Get(signal);
            w.U64(a.Handler);
            w.U64(a.Flags);
            w.U64(a.Restorer);
            w.U64(a.Mask);
        }
        w.U64(p.Signals.BlockedMask);
        w.U64(p.Signals.PendingMask);

        var space = p.AddressSpace;
        w.U64(space.BrkStart);
        w.U64(space.Brk);
        w.VarU((ulong)space.MappedRanges.Count);
        foreach (var (start, end) in space.MappedRanges)
        {
            w.U64(start);
            w.U64(end);
        }
        WriteProtections(w, p.Memory.Protections);

        // Descriptions and everything they reach: other sockets, pending connections, epoll interests.
        var files = new Ids<OpenFile>();
        var pendings = new Ids<PendingConnection>();
        var net = p.Network;
        foreach (var (file, _) in p.Files.Entries) if (file is not null) files.Add(file);
        foreach (var port in net.Listeners.Keys.Order()) files.Add(net.Listeners[port]);
        foreach (var connection in net.Connections.Keys.Order()) files.Add(net.Connections[connection]);
        foreach (var connection in net.PendingByConnection.Keys.Order()) pendings.Add(net.PendingByConnection[connection]);
        for (int i = 0; i < files.Count || i < pendings.Count; i++)
        {
            if (i < files.Count)
            {
                switch (files[i])
                {
                    case Socket s:
                        if (s.LocalPeer is { } peer) files.Add(peer);
                        foreach (var pending in s.PendingAccepts) pendings.Add(pending);
                        if (s.PendingAtListener is { } waiting) pendings.Add(waiting);
                        break;
                    case EpollFile epoll:
                        foreach (var entry in epoll.Interest) files.Add(entry.File);
                        break;
                }
            }
            // A pending connection's client socket may be reachable only from there.
            for (int j = 0; j < pendings.Count; j++)
            {
                if (pendings[j].LocalClient is { } client) files.Add(client);
            }
        }

        // Nodes: the tree as listed so far, then what descriptions, the cwd and /proc/self/fd links hold.
        var fs = p.FileSystem;
        var nodes = new Ids<FsNode>();
        nodes.Add(fs.Root);
        for (int i = 0; i < files.Count; i++) if (files[i] is NodeFile nf) nodes.Add(nf.FileNode);
        nodes.Add(p.Files.CurrentDirectory);
        foreach (int fd in fs.FdLinks.Keys.Order()) nodes.Add(fs.FdLinks[fd]);
        for (int i = 0; i < nodes.Count; i++)
        {
            var node = nodes[i];
            if (node.Parent is { } parent) nodes.Add(parent);
            if (node.ListedChildren is { } children) foreach (var child in children.Values) nodes.Add(child);
        }

        w.U64(fs.NextInode);
        w.VarU((ulong)nodes.Count);
        for (int i = 0; i < nodes.Count; i++) WriteNode(w, nodes[i], nodes, fs);
        w.VarU((ulong)fs.FdLinks.Count);
        foreach (int fd in fs.FdLinks.Keys.Order())
        {
            w.VarU((ulong)fd);
            w.VarU((ulong)nodes[fs.FdLinks[fd]]);
        }

        var pipes = new Ids<Pipe>();
        for (int i = 0; i < files.Count; i++) if (files[i] is PipeEnd end) pipes.Add(end.Pipe);
        w.VarU((ulong)pipes.Count);
        for (int i = 0; i < pipes.Count; i++)
        {
            var pipe = pipes[i];
            w.U64(pipe.Inode);
            w.VarU((ulong)pipe.Readers);
            w.VarU((ulong)pipe.Writers);
            w.Bytes(pipe.Contents());
        }

        w.VarU((ulong)pendings.Count);
        for (int i = 0; i < pendings.Count; i++)
        {
            var pending = pendings[i];
            w.VarI(pending.Connection);
            w.Bytes(pending.PeerAddress);
            w.VarI(pending.PeerPort);
            w.Bytes(pending.Received.ToArray());
            w.U8(pending.PeerClosed ? (byte)1 : (byte)0);
            w.VarI(pending.LocalClient is { } client ? files[client] : -1);
        }

        w.VarU((ulong)files.Count);
        for (int i = 0; i < files.Count; i++) WriteFile(w, files[i], files, nodes, pipes, pendings);

        var entries = p.Files.Entries;
        w.VarU((ulong)entries.Count);
        foreach (var (file, closeOnExec) in entries)
        {
            w.VarI(file is null ? -1 : files[file]);
            w.U8(closeOnExec ? (byte)1 : (byte)0);
        }
        w.U64(p.Files.NextPipeInode);
        w.VarU((ulong)nodes[p.Files.CurrentDirectory]);

        var counters = net.Counters;
        w.VarI(counters.NextEphemeral);
        w.U64(counters.NextInode);
        w.VarI(counters.LiveSockets);
        w.VarI(counters.Pumps);
        w.VarI(counters.NextLocalConnection);
        w.VarI(net.MaxUnreadBytes);
        w.VarU((ulong)net.Listeners.Count);
        foreach (int port in net.Listeners.Keys.Order())
        {
            w.VarI(port);
            w.VarU((ulong)files[net.Listeners[port]]);
        }
        w.VarU((ulong)net.Connections.Count);
        foreach (long connection in net.Connections.Keys.Order())
        {
            w.VarI(connection);
            w.VarU((ulong)files[net.Connections[connection]]);
        }
        w.VarU((ulong)net.BoundPorts.Count);
        foreach (int port in net.BoundPorts.Order()) w.VarI(port);
        w.VarU((ulong)net.PendingByConnection.Count);
        foreach (long connection in net.PendingByConnection.Keys.Order())
        {
            w.VarI(connection);
            w.VarU((ulong)pendings[net.PendingByConnection[connection]]);
        }
        return w.Written.ToArray();
    }

    private static void WriteProtections(ByteWriter w, ReadOnlySpan<Protection> pages)
    {
        // Runs of equal protection: a few dozen for a typical process.
        w.VarU((ulong)pages.Length);
        int i = 0;
        while (i < pages.Length)
        {
            int run = 1;
            while (i + run < pages.Length && pages[i + run] == pages[i]) run++;
            w.VarU((ulong)run);
            w.U8((byte)pages[i]);
            i += run;
        }
    }

    private static void WriteNode(ByteWriter w, FsNode node, Ids<FsNode> nodes, VirtualFileSystem fs)
    {
        w.U8((byte)node.Kind);
        w.U64(node.Inode);
        w.VarU(node.Permissions);
        w.VarU(node.Uid);
        w.VarU(node.Gid);
        w.VarI(node.AccessTime);
        w.VarI(node.ModifyTime);
        w.VarI(node.ChangeTime);
        w.VarI(node.LinkCount);
        w.VarI(node.Parent is { } parent ? nodes[parent] : -1);
        Text(w, node.Name);
        w.U8((byte)((node.Unlinked ? 1 : 0) | (node.SymlinkTarget is not null ? 2 : 0)));
        w.U8((byte)node.Device);
        w.U64(node.DeviceNumber);
        w.U8((byte)node.Proc);
        w.VarI(node.FdNumber);
        if (node.SymlinkTarget is { } target) Text(w, target);
        switch (node.Data)
        {
            case null:
                w.U8(DataNone);
                break;
            case { HostPath: { } host }:
                w.U8(DataHost);
                HostText(w, Path.GetRelativePath(fs.ImageRoot ?? "/", host));
                w.VarI(node.Data.Length);
                break;
            case { ImageBytes: { } bytes }:
                w.U8(DataExtra);
                string key = fs.ExtraFiles.First(e => ReferenceEquals(e.Value, bytes)).Key;
                HostText(w, key);
                w.VarI(node.Data.Length);
                break;
            case var data:
                w.U8(DataLayer);
                w.VarI(data.Length);
                w.Bytes(data.StoredBytes);
                break;
        }
        if (node.PendingHostDirectory is { } hostDirectory)
        {
            w.U8(1);
            HostText(w, Path.GetRelativePath(fs.ImageRoot ?? "/", hostDirectory));
        }
        else if (node.ListedChildren is { } children)
        {
            w.U8(2);
            w.VarU((ulong)children.Count);
            foreach (var (name, child) in children)
            {
                Text(w, name);
                w.VarU((ulong)nodes[child]);
            }
        }
        else
        {
            w.U8(0);
        }
    }

    private static void WriteFile(ByteWriter w, OpenFile file, Ids<OpenFile> files, Ids<FsNode> nodes, Ids<Pipe> pipes, Ids<PendingConnection> pendings)
    {
        byte kind = file switch
        {
            StandardStream => FileStandard,
            NodeFile => FileNode,
            PipeEnd => FilePipe,
            Socket => FileSocket,
            EpollFile => FileEpoll,
            _ => throw new InvalidOperationException($"open file of type {file.GetType().Name} cannot be snapshotted"),
        };
        w.U8(kind);
        w.VarI(file.Flags);
        w.VarU((ulong)file.References);
        switch (file)
        {
            case StandardStream s:
                w.VarU((ulong)s.Stream);
                break;
            case NodeFile n:
                w.VarU((ulong)nodes[n.FileNode]);
                w.VarI(n.Position);
                w.U8(n.DirectoryCursor is null ? (byte)0 : (byte)1);
                if (n.DirectoryCursor is { } cursor) Text(w, cursor);
                break;
            case PipeEnd e:
                w.VarU((ulong)pipes[e.Pipe]);
                w.U8(e.IsReadEnd ? (byte)1 : (byte)0);
                break;
            case Socket s:
                w.VarI(s.Family);
                w.U64(s.Inode);
                w.U8((byte)s.State);
                w.VarI(s.BoundPort);
                w.VarI(s.LocalPort);
                w.Bytes(s.LocalAddress);
                w.Bytes(s.PeerAddress);
                w.VarI(s.PeerPort);
                w.VarI(s.Connection);
                w.VarI(s.LocalPeer is { } peer ? files[peer] : -1);
                w.VarI(s.Backlog);
                w.U8((byte)((s.PeerClosed ? 1 : 0) | (s.ReadShut ? 2 : 0) | (s.WriteShut ? 4 : 0)));
                w.VarI(s.InputGeneration);
                w.VarU((ulong)s.PendingAccepts.Count);
                foreach (var pending in s.PendingAccepts) w.VarU((ulong)pendings[pending]);
                w.VarI(s.PendingAtListener is { } waiting ? pendings[waiting] : -1);
                var options = s.Options.ToList();
                w.VarU((ulong)options.Count);
                foreach (var ((level, name), value) in options)
                {
                    w.VarI(level);
                    w.VarI(name);
                    w.VarI(value);
                }
                w.Bytes(s.QueuedBytes());
                break;
            case EpollFile epoll:
                w.U64(epoll.Inode);
                w.VarU((ulong)epoll.Interest.Count);
                foreach (var entry in epoll.Interest)
                {
                    w.VarI(entry.Fd);
                    w.VarU((ulong)files[entry.File]);
                    w.VarU(entry.Events);
                    w.U64(entry.Data);
                    w.U8(entry.Disarmed ? (byte)1 : (byte)0);
                    w.VarU(entry.LastEvents);
                    w.VarI(entry.LastGeneration);
                }
                break;
        }
    }

    /// <summary>
    /// Puts the state back into a freshly built process of the same configuration (its file system built from the
    /// same image and program, nothing run yet). Throws <see cref="SnapshotFormatException"/> on malformed data.
    /// </summary>
    public static void Restore(LinuxProcess p, ReadOnlySpan<byte> data)
    {
        try
        {
            RestoreCore(p, data);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidCastException or IndexOutOfRangeException or KeyNotFoundException or OverflowException)
        {
            throw new SnapshotFormatException($"the snapshot's process state is malformed: {e.Message}", e);
        }
    }

    private static void RestoreCore(LinuxProcess p, ReadOnlySpan<byte> data)
    {
        var r = new ByteReader(data);
        p.Name = r.Bytes().ToArray();
        if (p.Name.Length > 15) throw new FormatException("process name longer than 15 bytes");
        p.Umask = (uint)r.VarU() & 0x1FF;
        p.ClearChildTid = r.U64();
        p.LastSyscall = (int)Math.Clamp(r.VarI(), -1, int.MaxValue);
        for (int signal = 1; signal <= Signals.Count; signal++) p.Signals.Set(signal, new SignalState.Action(r.U64(), r.U64(), r.U64(), r.U64()));
        p.Signals.BlockedMask = r.U64();
        p.Signals.PendingMask = r.U64();

        ulong brkStart = r.U64(), brk = r.U64();
        int rangeCount = r.Int32(MaxCount);
        var ranges = new List<(ulong, ulong)>(Math.Min(rangeCount, 4096));
        ulong previousEnd = 0;
        for (int i = 0; i < rangeCount; i++)
        {
            ulong start = r.U64(), end = r.U64();
            if (start < previousEnd || end <= start || end > p.Memory.UserEnd || start % GuestMemory.PageSize != 0 || end % GuestMemory.PageSize != 0)
                throw new FormatException($"mapped range 0x{start:x}-0x{end:x} is out of order or out of range");
            ranges.Add((start, end));
            previousEnd = end;
        }
        p.AddressSpace.Restore(ranges, brkStart, brk);
        ReadProtections(ref r, p.Memory);

        var fs = p.FileSystem;
        ulong nextInode = r.U64();
        int nodeCount = r.Int32(MaxCount);
        if (nodeCount < 1) throw new FormatException("no root node");
        var nodes = new FsNode[nodeCount];
        var fixups = new List<Action>();
        for (int i = 0; i < nodeCount; i++) nodes[i] = ReadNode(ref r, i, nodes, fs, fixups);
        foreach (var fixup in fixups) fixup();
        fixups.Clear();
        CheckTree(nodes);
        fs.NextInode = nextInode;
        fs.FdLinks.Clear();
        int linkCount = r.Int32(MaxCount);
        for (int i = 0; i < linkCount; i++)
        {
            int fd = r.Int32(FileTable.MaxDescriptors);
            fs.FdLinks[fd] = nodes[r.Int32(nodeCount - 1)];
        }

        int pipeCount = r.Int32(MaxCount);
        var pipes = new Pipe[pipeCount];
        var pipeCounts = new (int Readers, int Writers)[pipeCount];
        for (int i = 0; i < pipeCount; i++)
        {
            pipes[i] = new Pipe(r.U64());
            pipeCounts[i] = (r.Int32(int.MaxValue), r.Int32(int.MaxValue));
            var contents = r.Bytes();
            if (contents.Length > Pipe.HardLimit) throw new FormatException("pipe holds more than its limit");
            pipes[i].RestoreContents(contents.ToArray());
        }

        int pendingCount = r.Int32(MaxCount);
        var pendings = new PendingConnection[pendingCount];
        var pendingClients = new int[pendingCount];
        for (int i = 0; i < pendingCount; i++)
        {
            long connection = r.VarI();
            byte[] address = r.Bytes().ToArray();
            int port = (int)r.VarI();
            var pending = new PendingConnection(connection, address, port);
            pending.Received.Write(r.Bytes());
            pending.PeerClosed = r.U8() != 0;
            pendingClients[i] = (int)r.VarI();
            pendings[i] = pending;
        }

        var net = p.Network;
        int fileCount = r.Int32(MaxCount);
        var files = new OpenFile[fileCount];
        for (int i = 0; i < fileCount; i++) files[i] = ReadFile(ref r, p, nodes, pipes, pendings, files, fixups);
        foreach (var fixup in fixups) fixup();
        for (int i = 0; i < pendingCount; i++)
        {
            if (pendingClients[i] >= 0) pendings[i].LocalClient = (Socket)files[CheckId(pendingClients[i], fileCount)];
        }
        for (int i = 0; i < pipeCount; i++) (pipes[i].Readers, pipes[i].Writers) = pipeCounts[i];

        int entryCount = r.Int32(FileTable.MaxDescriptors);
        var entries = new List<(OpenFile?, bool)>(entryCount);
        for (int i = 0; i < entryCount; i++)
        {
            long id = r.VarI();
            entries.Add((id < 0 ? null : files[CheckId(id, fileCount)], r.U8() != 0));
        }
        p.Files.RestoreEntries(entries);
        p.Files.NextPipeInode = r.U64();
        var cwd = nodes[r.Int32(nodeCount - 1)];
        if (!cwd.IsDirectory) throw new FormatException("the working directory is not a directory");
        p.Files.CurrentDirectory = cwd;

        var counters = (NextEphemeral: (int)r.VarI(), NextInode: r.U64(), LiveSockets: (int)r.VarI(), Pumps: r.VarI(), NextLocal: r.VarI());
        net.MaxUnreadBytes = (int)Math.Clamp(r.VarI(), 1, int.MaxValue);
        net.Listeners.Clear();
        int listeners = r.Int32(MaxCount);
        for (int i = 0; i < listeners; i++)
        {
            int port = (int)r.VarI();
            net.Listeners[port] = (Socket)files[r.Int32(fileCount - 1)];
        }
        net.Connections.Clear();
        int connections = r.Int32(MaxCount);
        for (int i = 0; i < connections; i++)
        {
            long connection = r.VarI();
            net.Connections[connection] = (Socket)files[r.Int32(fileCount - 1)];
        }
        net.BoundPorts.Clear();
        int bound = r.Int32(MaxCount);
        for (int i = 0; i < bound; i++) net.BoundPorts.Add((int)r.VarI());
        net.PendingByConnection.Clear();
        int pendingByConnection = r.Int32(MaxCount);
        for (int i = 0; i < pendingByConnection; i++)
        {
            long connection = r.VarI();
            net.PendingByConnection[connection] = pendings[r.Int32(pendingCount - 1)];
        }
        // Sockets made above counted themselves; the recorded counters win.
        net.Counters = (counters.NextEphemeral, counters.NextInode, counters.LiveSockets, counters.Pumps, counters.NextLocal);
        if (!r.AtEnd) throw new FormatException("trailing bytes after the process state");
    }

    private static void ReadProtections(ref ByteReader r, GuestMemory memory)
    {
        int pageCount = r.Int32(int.MaxValue);
        var pages = new Protection[memory.Protections.Length];
        if (pageCount != pages.Length) throw new FormatException($"the snapshot has {pageCount} pages of protections; this VM has {pages.Length}");
        int at = 0;
        while (at < pages.Length)
        {
            int run = r.Int32(pages.Length - at);
            if (run == 0) throw new FormatException("empty protection run");
            byte value = r.U8();
            if (value > 7) throw new FormatException($"protection {value} is not a combination of read, write and execute");
            pages.AsSpan(at, run).Fill((Protection)value);
            at += run;
        }
        memory.RestoreProtections(pages);
    }

    private static FsNode ReadNode(ref ByteReader r, int id, FsNode[] nodes, VirtualFileSystem fs, List<Action> fixups)
    {
        byte kindByte = r.U8();
        if (kindByte > (byte)NodeKind.CharDevice) throw new FormatException($"node kind {kindByte}");
        var kind = (NodeKind)kindByte;
        ulong inode = r.U64();
        uint permissions = (uint)r.VarU();
        uint uid = (uint)r.VarU(), gid = (uint)r.VarU();
        long atime = r.VarI(), mtime = r.VarI(), ctime = r.VarI();
        int linkCount = (int)r.VarI();
        long parent = r.VarI();
        string name = Text(ref r);
        byte flags = r.U8();
        byte device = r.U8();
        if (device > (byte)DeviceKind.URandom) throw new FormatException($"device kind {device}");
        ulong deviceNumber = r.U64();
        byte proc = r.U8();
        if (proc > (byte)ProcKind.FdLink) throw new FormatException($"proc kind {proc}");
        int fdNumber = (int)r.VarI();
        string? target = (flags & 2) != 0 ? Text(ref r) : null;
        FileData? data = r.U8() switch
        {
            DataNone => null,
            DataHost => FileData.FromHost(ImagePath(fs, HostText(ref r)), Length(r.VarI())),
            DataExtra => ExtraFile(fs, HostText(ref r), r.VarI()),
            DataLayer => Layer(r.VarI(), r.Bytes()),
            var other => throw new FormatException($"file data kind {other}"),
        };
        string? hostDirectory = null;
        SortedDictionary<string, FsNode>? children = null;
        List<(string Name, int Child)>? childIds = null;
        switch (r.U8())
        {
            case 0:
                break;
            case 1:
                hostDirectory = ImagePath(fs, HostText(ref r));
                break;
            case 2:
                int count = r.Int32(MaxCount);
                childIds = new List<(string, int)>(Math.Min(count, 4096));
                for (int i = 0; i < count; i++) childIds.Add((Text(ref r), r.Int32(nodes.Length - 1)));
                children = new SortedDictionary<string, FsNode>(StringComparer.Ordinal);
                break;
            default:
                throw new FormatException("bad directory state");
        }
        if (kind != NodeKind.Directory && (hostDirectory is not null || children is not null)) throw new FormatException("a non-directory node has entries");
        if ((kind == NodeKind.Regular) != (data is not null)) throw new FormatException("file data on a node that is not a regular file (or none on one that is)");

        FsNode node;
        if (id == 0)
        {
            node = fs.Root;
            if (kind != NodeKind.Directory || inode != node.Inode) throw new FormatException("the first node is not the root directory");
        }
        else
        {
            node = new FsNode(kind, inode, permissions)
            {
                Data = data,
                SymlinkTarget = target,
                Device = (DeviceKind)device,
                DeviceNumber = deviceNumber,
                Proc = (ProcKind)proc,
                FdNumber = fdNumber,
            };
        }
        node.Permissions = permissions & FileModes.PermissionMask;
        node.Uid = uid;
        node.Gid = gid;
        node.AccessTime = atime;
        node.ModifyTime = mtime;
        node.ChangeTime = ctime;
        node.LinkCount = linkCount;
        node.Name = name;
        node.Unlinked = (flags & 1) != 0;
        node.RestoreDirectory(hostDirectory, children);
        if (parent >= nodes.Length) throw new FormatException($"parent node {parent} does not exist");
        fixups.Add(() =>
        {
            node.Parent = parent >= 0 ? nodes[parent] : null;
            if (childIds is not null)
            {
                foreach (var (childName, child) in childIds) children![childName] = nodes[child];
            }
        });
        return node;
    }

    /// <summary>
    /// The nodes must form the tree the file system code assumes (it walks parents and children without limits): every
    /// parent chain reaches the root, a directory is listed in at most one directory (its parent), the root in none.
    /// </summary>
    private static void CheckTree(FsNode[] nodes)
    {
        var root = nodes[0];
        if (root.Parent != root) throw new FormatException("the root is not its own parent");
        var listedIn = new Dictionary<FsNode, FsNode>(ReferenceEqualityComparer.Instance);
        foreach (var directory in nodes)
        {
            if (directory.ListedChildren is not { } children) continue;
            foreach (var child in children.Values)
            {
                if (child == root) throw new FormatException("the root is listed in a directory");
                if (!child.IsDirectory) continue;
                if (!listedIn.TryAdd(child, directory) || child.Parent != directory) throw new FormatException($"directory {child.Name} is listed twice or away from its parent");
            }
        }
        foreach (var node in nodes)
        {
            var at = node;
            for (int steps = 0; at != root; steps++)
            {
                if (at.Parent is null || steps > nodes.Length) throw new FormatException($"node {node.Name} is not below the root");
                at = at.Parent;
            }
        }
    }

    private static long Length(long length) => length is >= 0 and <= FileData.MaxSize ? length : throw new FormatException($"file length {length}");

    private static FileData Layer(long length, ReadOnlySpan<byte> stored)
    {
        if (Length(length) < stored.Length) throw new FormatException("a layer file stores more than its length");
        return FileData.FromLayer(stored.ToArray(), length);
    }

    private static FileData ExtraFile(VirtualFileSystem fs, string key, long length)
    {
        if (!fs.ExtraFiles.TryGetValue(key, out var bytes)) throw new FormatException($"the snapshot names extra file {key}, which this VM lacks");
        if (bytes.Length != length) throw new FormatException($"extra file {key} has {bytes.Length} bytes; the snapshot says {length}");
        return FileData.FromBytes(bytes);
    }

    /// <summary>A host path inside this VM's image; the snapshot holds it relative to the image root.</summary>
    private static string ImagePath(VirtualFileSystem fs, string relative)
    {
        if (fs.ImageRoot is not { } root) throw new FormatException("the snapshot refers to image files, but this VM has no image");
        string full = Path.GetFullPath(Path.Combine(root, relative));
        string prefix = root.EndsWith('/') ? root : root + "/";
        if (full != root && !full.StartsWith(prefix, StringComparison.Ordinal)) throw new FormatException($"image path {relative} leaves the image");
        return full;
    }

    private static OpenFile ReadFile(ref ByteReader r, LinuxProcess p, FsNode[] nodes, Pipe[] pipes, PendingConnection[] pendings, OpenFile[] files, List<Action> fixups)
    {
        byte kind = r.U8();
        int flags = (int)r.VarI();
        int references = r.Int32(int.MaxValue);
        OpenFile file;
        switch (kind)
        {
            case FileStandard:
                int stream = r.Int32(2);
                file = new StandardStream(p.Host, stream);
                break;
            case FileNode:
                var node = nodes[r.Int32(nodes.Length - 1)];
                var nodeFile = new NodeFile(p.FileSystem, p.Host, node, flags) { Position = Math.Max(0, r.VarI()) };
                if (r.U8() != 0) nodeFile.DirectoryCursor = Text(ref r);
                file = nodeFile;
                break;
            case FilePipe:
                var pipe = pipes[r.Int32(pipes.Length - 1)];
                file = new PipeEnd(pipe, r.U8() != 0, flags);
                break;
            case FileSocket:
                var s = new Socket(p.Network, (int)r.VarI(), flags)
                {
                    Inode = r.U64(),
                };
                byte state = r.U8();
                if (state > (byte)SocketState.Closed) throw new FormatException($"socket state {state}");
                s.State = (SocketState)state;
                s.BoundPort = (int)r.VarI();
                s.LocalPort = (int)r.VarI();
                s.LocalAddress = r.Bytes().ToArray();
                s.PeerAddress = r.Bytes().ToArray();
                s.PeerPort = (int)r.VarI();
                s.Connection = r.VarI();
                long peer = r.VarI();
                s.Backlog = (int)r.VarI();
                byte bits = r.U8();
                s.PeerClosed = (bits & 1) != 0;
                s.ReadShut = (bits & 2) != 0;
                s.WriteShut = (bits & 4) != 0;
                s.InputGeneration = r.VarI();
                int accepts = r.Int32(MaxCount);
                for (int i = 0; i < accepts; i++) s.PendingAccepts.Enqueue(pendings[r.Int32(pendings.Length - 1)]);
                long waiting = r.VarI();
                if (waiting >= 0) s.PendingAtListener = pendings[CheckId(waiting, pendings.Length)];
                int options = r.Int32(MaxCount);
                for (int i = 0; i < options; i++) s.SetOption((int)r.VarI(), (int)r.VarI(), (int)r.VarI());
                s.RestoreQueue(r.Bytes().ToArray());
                if (peer >= 0)
                {
                    int peerId = CheckId(peer, files.Length);
                    fixups.Add(() => s.LocalPeer = (Socket)files[peerId]);
                }
                file = s;
                break;
            case FileEpoll:
                var epoll = new EpollFile(r.U64(), 0);
                int interest = r.Int32(MaxCount);
                for (int i = 0; i < interest; i++)
                {
                    int fd = (int)r.VarI();
                    int target = r.Int32(files.Length - 1);
                    uint events = (uint)r.VarU();
                    ulong userData = r.U64();
                    bool disarmed = r.U8() != 0;
                    uint lastEvents = (uint)r.VarU();
                    long lastGeneration = r.VarI();
                    int slot = epoll.Interest.Count;
                    epoll.Interest.Add(null!);
                    fixups.Add(() => epoll.Interest[slot] = new EpollFile.Entry(fd, files[target], events, userData)
                    {
                        Disarmed = disarmed, LastEvents = lastEvents, LastGeneration = lastGeneration,
                    });
                }
                file = epoll;
                break;
            default:
                throw new FormatException($"open file kind {kind}");
        }
        file.Flags = flags;
        file.References = references;
        return file;
    }

    private static int CheckId(long id, int count) => id >= 0 && id < count ? (int)id : throw new FormatException($"reference {id} out of range");

    private static void Text(ByteWriter w, string text) => w.Bytes(Encoding.Latin1.GetBytes(text));

    private static string Text(ref ByteReader r) => Encoding.Latin1.GetString(r.Bytes());

    /// <summary>Host paths and extra-file keys are .NET strings: UTF-8.</summary>
    private static void HostText(ByteWriter w, string text) => w.Bytes(Encoding.UTF8.GetBytes(text));

    private static string HostText(ref ByteReader r) => Encoding.UTF8.GetString(r.Bytes());

    /// <summary>Objects numbered in the order they are first added (reference identity).</summary>
    private sealed class Ids<T> where T : class
    {
        private readonly Dictionary<T, int> _ids = new(ReferenceEqualityComparer.Instance);
        private readonly List<T> _items = [];

        public int Count => _items.Count;

        public T this[int index] => _items[index];

        public int this[T item] => _ids[item];

        public void Add(T item)
        {
            if (_ids.TryAdd(item, _items.Count)) _items.Add(item);
        }
    }
}
