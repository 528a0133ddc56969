#!/usr/bin/env python3
"""Failover of a replicated VM after kill -9 of its primary's daemon, on loopback.

Three daemons (the published binary) form a cluster; a VM with 2 replicas runs tests/guests ticker (a line every
10 ms with a clock reading and random bytes, both logged inputs). KILLS times: wait until the primary has two live
replicas close behind, kill -9 the primary's daemon, and measure
  - detect+promote: until a survivor's `vm show` reports the next epoch with its copy running live, and
  - first output: until the new primary releases output beyond what any copy had released before the kill
    (output commit: released only once the remaining replica holds the log that produced it),
then restart the killed daemon (it comes back with no copy; repair makes it a replica again).
Also samples replica lag (exits, ms) and log bandwidth while the VM runs.

usage: bench/cluster/failover.py [BINARY] [--kills K]
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from reelection import request, free_port  # noqa: E402

def raw(sock_path, path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(sock_path)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    chunks = []
    while True:
        c = s.recv(65536)
        if not c:
            break
        chunks.append(c)
    s.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body

class Node:
    def __init__(self, binary, root, index):
        self.binary, self.dir = binary, os.path.join(root, f"n{index}")
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.proc = free_port(), None
        self.sock = os.path.join(self.dir, "control.sock")

    def start(self):
        args = [self.binary, "daemon", "--data-dir", os.path.join(self.dir, "data"), "--socket", self.sock,
                "--listen", f"127.0.0.1:{self.port}", "--mdns", "off", "--site", f"s{self.port}"]
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(1000):
            try:
                self.id = request(self.sock, "GET", "/v1/status")["node_id"]
                return
            except (OSError, RuntimeError):
                time.sleep(0.02)
        raise SystemExit(f"daemon {self.port} did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

def show(node):
    return request(node.sock, "GET", "/v1/vms/bench")

def released(node):
    try:
        code, body = raw(node.sock, "/v1/vms/bench/logs")
        return len(body) if code == 200 else 0
    except OSError:
        return 0

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?", default="out/p2preplay")
    parser.add_argument("--kills", type=int, default=20)
    args = parser.parse_args()
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ticker = os.path.join(repo, "tests", "guests", "build", "musl", "ticker")
    root = tempfile.mkdtemp(prefix="p2p-failover-")
    nodes = [Node(os.path.abspath(args.binary), root, i) for i in range(3)]
    promote, first_output, lag_exits, lag_ms = [], [], [], []
    try:
        for n in nodes:
            n.start()
        token = request(nodes[0].sock, "POST", "/v1/cluster/init")["token"]
        for n in nodes[1:]:
            request(n.sock, "POST", "/v1/cluster/join", {"token": token})
        time.sleep(3)
        request(nodes[0].sock, "POST", "/v1/vms", {"name": "bench", "replicas": 2, "program": ticker,
                                                   "arguments": ["100000", "10"]})
        started = time.time()
        by_id = lambda i: next(n for n in nodes if n.id == i)
        for k in range(args.kills):
            deadline = time.time() + 30
            while True:
                try:
                    view = show(by_id(show(nodes[0])["primary"]))
                    if view["role"] == "primary" and len(view["replica_status"]) == 2 and all(
                            r["live"] and r["lag_exits"] < 200 and r["replayed_exits"] > 0 for r in view["replica_status"]):
                        break
                except (OSError, RuntimeError, StopIteration, KeyError):
                    pass
                if time.time() > deadline:
                    raise SystemExit(f"kill {k + 1}: the VM never became healthy")
                time.sleep(0.05)
            # Sample lag for a second of steady running.
            for _ in range(20):
                for r in show(by_id(view["primary"]))["replica_status"]:
                    lag_exits.append(r["lag_exits"])
                    lag_ms.append(r["lag_ms"] or 0)
                time.sleep(0.05)
            victim = by_id(view["primary"])
            epoch = view["epoch"]
            survivors = [n for n in nodes if n is not victim]
            before = max(released(n) for n in nodes)
            victim.kill()
            t0 = time.perf_counter()
            live_at = out_at = None
            while out_at is None:
                for n in survivors:
                    try:
                        v = show(n)
                    except (OSError, RuntimeError):
                        continue
                    if live_at is None and v["epoch"] > epoch and v["role"] == "primary" and "live since" in v["state"]:
                        live_at = time.perf_counter()
                    if live_at is not None and v["role"] == "primary" and released(n) > before:
                        out_at = time.perf_counter()
                if time.perf_counter() - t0 > 20:
                    raise SystemExit(f"kill {k + 1}: no failover within 20 s")
                time.sleep(0.002)
            promote.append((live_at - t0) * 1000)
            first_output.append((out_at - t0) * 1000)
            print(f"kill {k + 1:2}: live after {promote[-1]:6.1f} ms, first new output after {first_output[-1]:6.1f} ms", flush=True)
            victim.start()
        final = show(by_id(show(nodes[0])["primary"]))
        seconds = time.time() - started
        print(f"\n3 daemons, VM with 2 replicas, {len(promote)} kills of the primary's daemon (kill -9), loopback:")
        print(f"  new primary live:       median {statistics.median(promote):6.1f} ms, p99 {pct(promote, 99):6.1f} ms, max {max(promote):6.1f} ms")
        print(f"  first new output:       median {statistics.median(first_output):6.1f} ms, p99 {pct(first_output, 99):6.1f} ms, max {max(first_output):6.1f} ms")
        print(f"  replica lag (steady):   exits median {statistics.median(lag_exits)}, p99 {pct(lag_exits, 99)}; ms median {statistics.median(lag_ms)}, p99 {pct(lag_ms, 99)}")
        print(f"  log: {final['log_bytes']} bytes in {seconds:.1f} s = {final['log_bytes'] * 8 / seconds / 1e6:.3f} Mbit/s per replica "
              f"({final['exits']} exits, {final['log_bytes'] / max(1, final['exits']):.1f} bytes/exit)")
    finally:
        for n in nodes:
            if n.proc and n.proc.poll() is None:
                n.kill()
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
