#!/usr/bin/env python3
"""A replicated guest server behind the daemons' front ends, on loopback.

Three daemons (the published binary) on 127.0.0.1, .2 and .3 form a cluster; each front end serves the guest's
port on its own address. tests/guests echo_server (a single-threaded epoll key-value server) runs as VM `kv`.

  bench   for each replica count in --replicas (default "0,2", created one after the other in the same cluster,
          alternating --rounds times so both see the same machine noise): throughput with a pipelined client
          (window --window) and latency with one request at a time, through a front end on a node that does not
          hold the primary; replica lag and log bandwidth under the pipelined load.
  kills   one VM with 2 replicas; a client streams SET/GET pairs through a front end that is not on the primary
          (moving, between kills, to another front end when the primary lands on its node); --kills times kill -9
          the primary's daemon mid-stream, restart it, wait for repair. Every reply is checked; the time from the
          kill to the first reply served by the new primary is measured.

usage: bench/cluster/kvserver.py [BINARY] [bench|kills] [--kills K] [--seconds S] [--window W] [--replicas 0,2]
"""
import argparse, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from reelection import request  # noqa: E402

GUEST_PORT = 7000

def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port

class Node:
    def __init__(self, binary, root, index, expose_port):
        self.binary, self.dir, self.host = binary, os.path.join(root, f"n{index}"), f"127.0.0.{index + 1}"
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.proc, self.expose_port = free_port(self.host), None, expose_port
        self.sock = os.path.join(self.dir, "control.sock")

    def start(self):
        args = [self.binary, "daemon", "--data-dir", os.path.join(self.dir, "data"), "--socket", self.sock,
                "--listen", f"{self.host}:{self.port}", "--mdns", "off", "--site", f"s{self.host}"]
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(1000):
            try:
                self.id = request(self.sock, "GET", "/v1/status")["node_id"]
                return
            except (OSError, RuntimeError):
                time.sleep(0.02)
        raise SystemExit(f"daemon {self.host} did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

def cpu_seconds(node):
    # utime + stime of the daemon (all its threads: the VM copies run inside it), from /proc/PID/stat.
    with open(f"/proc/{node.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

class Client:
    """SET k v / GET k pairs with checked replies; keys cycle over 32 (the server holds 64)."""
    def __init__(self, host, port, timeout=20):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sent = self.checked = 0

    @staticmethod
    def request(i):
        # Even i: SET k<j> v<i>; odd i: GET k<j> -> VALUE v<i-1>.
        j = (i // 2) % 32
        return f"SET k{j} v{i}\n".encode() if i % 2 == 0 else f"GET k{j}\n".encode()

    @staticmethod
    def expected(i):
        return b"OK" if i % 2 == 0 else f"VALUE v{i - 1}".encode()

    def send(self, count):
        self.s.sendall(b"".join(self.request(self.sent + k) for k in range(count)))
        self.sent += count

    def read_replies(self, count):
        """Reads and checks count replies; returns their arrival times."""
        times = []
        while len(times) < count:
            while b"\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise RuntimeError(f"connection closed after {self.checked} replies")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            if line != self.expected(self.checked):
                raise RuntimeError(f"reply {self.checked}: got {line!r}, expected {self.expected(self.checked)!r}")
            self.checked += 1
            times.append(time.perf_counter())
        return times

    def close(self):
        self.s.close()

class Cluster:
    def __init__(self, binary):
        self.root = tempfile.mkdtemp(prefix="p2p-kv-")
        self.expose_port = free_port("127.0.0.1")
        self.nodes = [Node(binary, self.root, i, self.expose_port) for i in range(3)]
        for n in self.nodes:
            n.start()
        token = request(self.nodes[0].sock, "POST", "/v1/cluster/init")["token"]
        for n in self.nodes[1:]:
            request(n.sock, "POST", "/v1/cluster/join", {"token": token})
        deadline = time.time() + 30
        while True:
            s = request(self.nodes[0].sock, "GET", "/v1/status")
            if s.get("leader") and s.get("voters") == 3:
                break
            if time.time() > deadline:
                raise SystemExit("cluster did not form")
            time.sleep(0.1)

    def by_id(self, node_id):
        return next(n for n in self.nodes if n.id == node_id)

    def alive(self):
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def show(self, name):
        for n in self.alive():
            try:
                return request(n.sock, "GET", f"/v1/vms/{name}")
            except (OSError, RuntimeError):
                continue
        raise RuntimeError("no daemon answers")

    def create(self, name, replicas, server):
        request(self.alive()[0].sock, "POST", "/v1/vms", {"name": name, "replicas": replicas, "program": server,
                                                          "arguments": [str(GUEST_PORT), "epoll", "2000000000"],
                                                          "expose": [f"{GUEST_PORT}:{self.expose_port}"]})

    def healthy(self, name, replicas, timeout=30):
        """Waits until the primary runs with all replicas live; returns the primary's view."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                view = request(self.by_id(self.show(name)["primary"]).sock, "GET", f"/v1/vms/{name}")
                if view["role"] == "primary" and len(view["replica_status"]) == replicas and all(
                        r["live"] and r["replayed_exits"] > 0 and r["lag_exits"] < 500 for r in view["replica_status"]) and "running" in view["state"]:
                    return view
            except (OSError, RuntimeError, StopIteration, KeyError):
                pass
            time.sleep(0.05)
        raise SystemExit(f"{name} did not become healthy within {timeout} s")

    def stop(self, name):
        request(self.alive()[0].sock, "DELETE", f"/v1/vms/{name}")

    def close(self):
        for n in self.nodes:
            if n.proc and n.proc.poll() is None:
                n.kill()
        if os.environ.get("KEEP"):
            print("kept", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

def front_end(cluster, primary_id):
    return next(n for n in cluster.alive() if n.id != primary_id)

def bench(cluster, server, args):
    counts = [int(r) for r in args.replicas.split(",")]
    results = {r: {"tput": [], "lat": [], "lag_ms": [], "lag_exits": [], "mbit": [], "cpu": []} for r in counts}
    for round_ in range(args.rounds):
        for r in counts:
            name = f"kv{r}r{round_}"
            cluster.create(name, r, server)
            view = cluster.healthy(name, r)
            fe = front_end(cluster, view["primary"])
            c = Client(fe.host, cluster.expose_port)
            # Warm up, then the pipelined throughput run.
            c.send(200)
            c.read_replies(200)
            cpu0 = [cpu_seconds(n) for n in cluster.nodes]
            log0, t0 = view["log_bytes"], time.perf_counter()
            end = t0 + args.seconds
            done = 0
            c.send(args.window)
            while time.perf_counter() < end:
                c.read_replies(args.window // 2)
                done += args.window // 2
                c.send(args.window // 2)
                if r > 0 and done % (args.window * 8) == 0:
                    primary = request(cluster.by_id(view["primary"]).sock, "GET", f"/v1/vms/{name}")
                    for rep in primary["replica_status"]:
                        results[r]["lag_ms"].append(rep["lag_ms"] or 0)
                        results[r]["lag_exits"].append(rep["lag_exits"])
            elapsed = time.perf_counter() - t0
            c.read_replies(c.sent - c.checked)
            done = c.checked
            # CPU per request of the busiest daemon: on machines of their own (one core each) it bounds throughput.
            cpu = [cpu_seconds(n) - c0 for n, c0 in zip(cluster.nodes, cpu0)]
            results[r]["cpu"].append(max(cpu) / max(1, done - 200))
            after = request(cluster.by_id(view["primary"]).sock, "GET", f"/v1/vms/{name}")
            results[r]["tput"].append((done - 200) / elapsed)
            results[r]["mbit"].append((after["log_bytes"] - log0) * 8 / elapsed / 1e6)
            # Latency: one request at a time.
            lat = []
            for _ in range(args.latency_requests):
                t = time.perf_counter()
                c.send(1)
                c.read_replies(1)
                lat.append((time.perf_counter() - t) * 1e6)
            results[r]["lat"].extend(lat)
            c.close()
            cluster.stop(name)
            print(f"round {round_ + 1} replicas {r}: {results[r]['tput'][-1]:8.0f} req/s, latency median {statistics.median(lat):7.0f} us p99 {pct(lat, 99):7.0f} us", flush=True)
    rtt = []
    for _ in range(200):
        a, b = socket.socketpair()
        t = time.perf_counter()
        a.send(b"x")
        b.recv(1)
        rtt.append((time.perf_counter() - t) * 1e6)
    base = counts[0]
    print(f"\necho_server (epoll) behind the front ends, 3 daemons on loopback, {args.rounds} alternating rounds of {args.seconds} s:")
    for r in counts:
        res = results[r]
        line = (f"  replicas {r}: throughput median {statistics.median(res['tput']):8.0f} req/s "
                f"(x{statistics.median(res['tput']) / statistics.median(results[base]['tput']):.2f}), "
                f"latency median {statistics.median(res['lat']):6.0f} us p99 {pct(res['lat'], 99):6.0f} us")
        if res["lag_ms"]:
            line += f", lag p99 {pct(res['lag_ms'], 99)} ms / {pct(res['lag_exits'], 99)} exits"
        line += f", log {statistics.median(res['mbit']):.2f} Mbit/s per replica"
        line += f", busiest daemon {statistics.median(res['cpu']) * 1e6:.0f} us CPU per request"
        print(line)
    if len(counts) > 1:
        bound = [1 / statistics.median(results[r]["cpu"]) for r in counts]
        print(f"  one copy per machine (a core each), CPU-bound estimate: replicas {counts[-1]} reach x{bound[-1] / bound[0]:.2f} of replicas {counts[0]}"
              " (the busiest daemon's CPU per request, side by side; the network is not modelled)")
    print(f"  (loopback one-way socketpair hop: median {statistics.median(rtt):.0f} us)")

def kills(cluster, server, args):
    cluster.create("kv", 2, server)
    view = cluster.healthy("kv", 2)
    fe = front_end(cluster, view["primary"])
    c = Client(fe.host, cluster.expose_port, timeout=10)
    print('client via', fe.host, flush=True)
    gaps = []
    for k in range(args.kills):
        view = cluster.healthy("kv", 2)
        if view["primary"] == fe.id or fe not in cluster.alive():
            # The primary landed on the client's front end: finish what is in flight, move to another front end.
            c.read_replies(c.sent - c.checked)
            c.close()
            fe = front_end(cluster, view["primary"])
            c2 = Client(fe.host, cluster.expose_port, timeout=10)
            print('client via', fe.host, flush=True)
            c2.sent = c2.checked = c.checked  # requests go in even batches: SET/GET pairs stay together
            c = c2
        victim = cluster.by_id(view["primary"])
        # Stream: keep 64 requests in flight for a while, kill mid-stream, keep streaming through the failover.
        c.send(64)
        kill_at = time.perf_counter() + 0.3
        killed = None
        arrivals = []
        while True:
            times = c.read_replies(16)
            c.send(16)
            now = time.perf_counter()
            if killed is None and now >= kill_at:
                victim.kill()
                killed = time.perf_counter()
            elif killed is not None:
                arrivals.extend(times)
                if now - killed > 1.0 and cluster.show("kv")["epoch"] > view["epoch"]:
                    break
                if now - killed > 30:
                    raise SystemExit(f"kill {k + 1}: no replies resumed")
        # The stall: the longest pause between replies after the kill ends with the new primary's first reply.
        stall_end = max(range(1, len(arrivals)), key=lambda i: arrivals[i] - arrivals[i - 1])
        gap = (arrivals[stall_end] - killed) * 1000
        gaps.append(gap)
        print(f"kill {k + 1:2}: first reply from the new primary {gap:6.1f} ms after the kill; {c.checked} replies checked so far", flush=True)
        victim.start()
    c.read_replies(c.sent - c.checked)
    print(f"\n{args.kills} kills of the primary's daemon mid-stream, every reply checked ({c.checked} in the last connection):")
    print(f"  first reply from the new primary after the kill: median {statistics.median(gaps):.1f} ms, p99 {pct(gaps, 99):.1f} ms, max {max(gaps):.1f} ms")

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?", default="out/p2preplay")
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "kills"])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", default="0,2")
    parser.add_argument("--latency-requests", type=int, default=300)
    args = parser.parse_args()
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    server = os.path.join(repo, "tests", "guests", "build", "musl", "echo_server")
    cluster = Cluster(os.path.abspath(args.binary))
    try:
        (bench if args.mode == "bench" else kills)(cluster, server, args)
    except BaseException:
        if os.environ.get("KEEP"):
            import json
            for n in cluster.alive():
                try:
                    print(n.host, json.dumps(request(n.sock, "GET", "/v1/vms/kv")), file=sys.stderr)
                except (OSError, RuntimeError) as e:
                    print(n.host, e, file=sys.stderr)
        raise
    finally:
        cluster.close()

if __name__ == "__main__":
    main()
