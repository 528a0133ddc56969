#!/usr/bin/env python3
"""Leader re-election after kill -9 of the leader daemon, on loopback, default timeouts.

Starts N daemons (the published binary), forms a cluster from seed addresses, then KILLS times: kill -9 the
current leader, measure the time until a surviving node reports a new leader (a higher term), restart the killed
daemon from its data dir, wait until it follows again. Prints median, p90, p99 and max.

usage: bench/cluster/reelection.py [BINARY] [--nodes N] [--kills K]
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

def request(sock_path, method, path, body=None, timeout=2.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        data = b"" if body is None else json.dumps(body).encode()
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, _, payload = raw.partition(b"\r\n\r\n")
    code = int(head.split(b" ")[1])
    if code >= 300:
        raise RuntimeError(f"{method} {path}: {code} {payload.decode(errors='replace')}")
    return json.loads(payload)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

class Node:
    def __init__(self, binary, root, index):
        self.binary, self.dir = binary, os.path.join(root, f"n{index}")
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.proc, self.seeds = free_port(), None, []
        self.sock = os.path.join(self.dir, "control.sock")

    def start(self):
        args = [self.binary, "daemon", "--data-dir", os.path.join(self.dir, "data"), "--socket", self.sock,
                "--listen", f"127.0.0.1:{self.port}", "--mdns", "off", "--site", f"s{self.port}"]
        for seed in self.seeds:
            args += ["--seed", seed]
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                return self.status()
            except (OSError, RuntimeError):
                time.sleep(0.02)
        raise SystemExit(f"daemon {self.port} did not start; see {self.dir}/log")

    def status(self):
        return request(self.sock, "GET", "/v1/status")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

def wait(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, RuntimeError, ValueError):
            pass
        time.sleep(0.005)
    raise TimeoutError(f"timed out: {what}")

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?", default="out/p2preplay")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--kills", type=int, default=50)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="p2p-reelect-")
    nodes = [Node(os.path.abspath(args.binary), root, i) for i in range(args.nodes)]
    times = []
    try:
        nodes[0].start()
        token = request(nodes[0].sock, "POST", "/v1/cluster/init")["token"]
        for node in nodes[1:]:
            node.start()
            request(node.sock, "POST", "/v1/cluster/join", {"token": token})
        def leader_of_all():
            statuses = [n.status() for n in nodes]
            leaders = {s["leader"] for s in statuses}
            voters = statuses[0]["voters"]
            if len(leaders) == 1 and None not in leaders and voters == min(len(nodes) if len(nodes) % 2 else len(nodes) - 1, 5) and all(s["raft_state"] in ("leader", "follower") for s in statuses):
                return statuses
            return None
        wait(leader_of_all, 60, "the cluster forming")
        for k in range(args.kills):
            statuses = wait(leader_of_all, 30, "a stable leader before the kill")
            leader_id, term = statuses[0]["leader"], statuses[0]["term"]
            victim = next(n for n, s in zip(nodes, statuses) if s["node_id"] == leader_id)
            survivors = [n for n in nodes if n is not victim]
            victim.kill()
            start = time.perf_counter()
            def new_leader():
                for n in survivors:
                    s = n.status()
                    if s["leader"] not in (None, leader_id) and s["term"] > term:
                        return True
                return False
            wait(new_leader, 8, f"a new leader after kill {k + 1}")
            elapsed = (time.perf_counter() - start) * 1000
            times.append(elapsed)
            print(f"kill {k + 1:3}: new leader after {elapsed:7.1f} ms", flush=True)
            victim.start()
        report(times, args)
    except TimeoutError as e:
        print(e)
        subprocess.run(["ps", "-o", "pid,pcpu,stat,etime,args", "-p", ",".join(str(n.proc.pid) for n in nodes if n.proc)])
        if os.environ.get("P2P_HOLD"):
            time.sleep(float(os.environ["P2P_HOLD"]))
        for n in nodes:
            print(f"--- log of {n.port} (last 40 lines)")
            with open(os.path.join(n.dir, "log"), errors="replace") as f:
                print("".join(f.readlines()[-40:]))
        if times:
            report(times, args)
        sys.exit(1)
    finally:
        for n in nodes:
            if n.proc and n.proc.poll() is None:
                n.kill()
        shutil.rmtree(root, ignore_errors=True)

def report(times, args):
        times = sorted(times)
        def pct(p):
            return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))]
        print(f"\n{args.nodes} nodes, {len(times)} kills of the leader (kill -9), loopback:")
        print(f"  median {statistics.median(times):.1f} ms, p90 {pct(90):.1f} ms, p99 {pct(99):.1f} ms, max {times[-1]:.1f} ms, min {times[0]:.1f} ms")

if __name__ == "__main__":
    main()
