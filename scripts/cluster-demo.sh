#!/usr/bin/env bash
# A three-daemon cluster on loopback (distinct ports, data dirs and control sockets): create it, join it, show
# `status` and `peers`; run a replicated VM (a primary and two replicas replaying it live), kill -9 the primary's
# daemon and show the failover; kill -9 the Raft leader and show the new one. Everything lives in a temp dir.
# usage: scripts/cluster-demo.sh [BINARY]   (default out/p2preplay)
set -euo pipefail
bin="$(realpath "${1:-out/p2preplay}")"
dir="$(mktemp -d -t p2p-demo-XXXX)"
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for SOCKET JSON-CONDITION(python expression on s)
    for _ in $(seq 1 200); do
        if "$bin" status --json --socket "$1" 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($2) else 1)" 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "cluster-demo: timed out waiting for: $2" >&2; return 1
}

for i in 1 2 3; do
    port=$(free_port)
    "$bin" daemon --data-dir "$dir/n$i" --socket "$dir/n$i.sock" --listen "127.0.0.1:$port" --site "site-$i" --mdns off >"$dir/n$i.log" 2>&1 &
    pids+=($!)
    disown $!   # no "Killed" job report when the leader is killed
done
for i in 1 2 3; do wait_for "$dir/n$i.sock" "True"; done

echo "\$ p2preplay cluster init            # on node 1"
token=$("$bin" cluster init --json --socket "$dir/n1.sock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
echo "$token"
for i in 2 3; do
    echo "\$ p2preplay cluster join p2p1...    # on node $i"
    "$bin" cluster join "$token" --socket "$dir/n$i.sock"
done
for i in 1 2 3; do wait_for "$dir/n$i.sock" 's["leader"] and s["voters"] == 3 and sum(m["status"] == "alive" for m in s["members"]) == 3'; done
echo
echo "\$ p2preplay status                  # on node 2"
"$bin" status --socket "$dir/n2.sock"
echo
echo "\$ p2preplay peers                   # on node 3"
"$bin" peers --socket "$dir/n3.sock"

# A replicated VM: tests/guests/ticker prints a numbered line every 20 ms with a clock reading and random bytes
# (logged inputs the replicas replay).
ticker="$(cd "$(dirname "$0")/.." && pwd)/tests/guests/build/musl/ticker"
if [[ -x "$ticker" && -e /dev/kvm ]]; then
    echo
    echo "\$ p2preplay vm create ticker --replicas 2 -- $ticker 150 20"
    "$bin" vm create ticker --replicas 2 --socket "$dir/n1.sock" -- "$ticker" 150 20
    sleep 1
    primary=$("$bin" vm show ticker --json --socket "$dir/n1.sock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["primary"])')
    for i in 1 2 3; do
        id=$("$bin" status --json --socket "$dir/n$i.sock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["node_id"])')
        if [[ "$id" == "$primary" ]]; then vmhost=$i; fi
    done
    echo "\$ p2preplay vm show ticker         # on the primary's node ($vmhost)"
    "$bin" vm show ticker --socket "$dir/n$vmhost.sock"
    echo
    echo "\$ kill -9 <the VM's primary, node $vmhost>"
    kill -9 "${pids[$((vmhost - 1))]}"
    other=$(( vmhost % 3 + 1 ))
    wait_for "$dir/n$other.sock" "True"
    for _ in $(seq 1 100); do
        epoch=$("$bin" vm show ticker --json --socket "$dir/n$other.sock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
        [[ "$epoch" -gt 1 ]] && break
        sleep 0.05
    done
    sleep 3.5
    echo "\$ p2preplay vm show ticker         # on node $other: a replica took over at epoch $epoch"
    "$bin" vm show ticker --socket "$dir/n$other.sock"
    echo "\$ p2preplay vm logs ticker | tail -3"
    "$bin" vm logs ticker --socket "$dir/n$other.sock" | tail -3
    third=$(( other % 3 + 1 )); [[ "$third" == "$vmhost" ]] && third=$(( third % 3 + 1 ))
    a=$("$bin" vm logs ticker --socket "$dir/n$other.sock" | sha256sum); b=$("$bin" vm logs ticker --socket "$dir/n$third.sock" | sha256sum)
    lines=$("$bin" vm logs ticker --socket "$dir/n$other.sock" | grep -c '^tick ')
    echo "both surviving copies: $lines of 150 ticks, identical output: $([[ "$a" == "$b" ]] && echo yes || echo NO)"
    "$bin" daemon --data-dir "$dir/n$vmhost" --socket "$dir/n$vmhost.sock" --listen "127.0.0.1:$(free_port)" --site "site-$vmhost" --mdns off >>"$dir/n$vmhost.log" 2>&1 &
    pids[$((vmhost - 1))]=$!
    disown $!
    wait_for "$dir/n$vmhost.sock" "s['leader']"
fi

leader=$("$bin" status --json --socket "$dir/n1.sock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
for i in 1 2 3; do
    id=$("$bin" status --json --socket "$dir/n$i.sock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["node_id"])')
    if [[ "$id" == "$leader" ]]; then victim=$i; fi
done
survivor=$(( victim % 3 + 1 ))
echo
echo "\$ kill -9 <the leader, node $victim>"
start=$(date +%s%N)
kill -9 "${pids[$((victim - 1))]}"
wait_for "$dir/n$survivor.sock" "s['leader'] not in (None, '$leader')"
echo "a new leader after $(( ($(date +%s%N) - start) / 1000000 )) ms (measured by polling from this script):"
"$bin" status --socket "$dir/n$survivor.sock"
