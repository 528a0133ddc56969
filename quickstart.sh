#!/usr/bin/env bash
# Quick start: installs what is missing, publishes the NativeAOT binary to out/p2preplay and runs the built-in
# example programs in KVM microVMs, then forms a three-daemon cluster on loopback, runs a replicated VM, kills its
# primary (failover) and then the Raft leader.
set -euo pipefail
cd "$(dirname "$0")"

scripts/ensure-deps.sh
echo "==> publishing the NativeAOT binary"
dotnet publish src/P2PReplay/P2PReplay.csproj -c Release -o out --nologo -v quiet
echo "==> building the example guest programs"
tests/guests/build.sh >/dev/null

echo
echo "==> p2preplay run -- tests/guests/build/musl/hello"
out/p2preplay run -- tests/guests/build/musl/hello
echo
echo "==> p2preplay run -- /bin/busybox sh -c '...'   (a shell script inside the VM)"
out/p2preplay run --env GREETING=hello -- /bin/busybox sh -c '
fib() { a=0; b=1; i=0; while [ $i -lt $1 ]; do t=$((a + b)); a=$b; b=$t; i=$((i + 1)); done; }
fib 50
echo "$GREETING from a KVM microVM: fib(50) = $a"
echo "written inside the VM, to its writable layer" > /tmp/note.txt
while read -r line; do echo "read back: $line"; done < /tmp/note.txt
'
echo
echo "==> p2preplay run -- /bin/busybox sha256sum /proc/self/exe"
out/p2preplay run -- /bin/busybox sha256sum /proc/self/exe
echo
echo "==> record a run, then replay it: the replay shows the recorded time, not the current one"
log="$(mktemp -d)/date.p2plog"
out/p2preplay run --record "$log" -- /bin/busybox date -u '+the guest read the clock: %Y-%m-%d %H:%M:%S UTC'
sleep 1
out/p2preplay replay "$log"
out/p2preplay log inspect "$log" | tail -4

echo
echo "==> a crash is reported like a shell would:"
out/p2preplay run -- tests/guests/build/glibc/nullderef || echo "(exit status $?)"

echo
echo "==> the cluster: three daemons on loopback form a cluster, then the leader is killed"
scripts/cluster-demo.sh out/p2preplay
