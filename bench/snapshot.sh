#!/usr/bin/env bash
# VM snapshot cost: take (the replaying vCPU's pause), encode (zstd level 1 + SHA-256), decode, restore into a new VM,
# and the encoded size, for the snapmix guest with a touched 64 MiB heap (byte-pattern and random contents).
# Runs the SnapshotBenchmark test with P2PREPLAY_BENCH=1 (5 repetitions, medians). Needs /dev/kvm and the guests
# (tests/guests/build.sh). Usage: bench/snapshot.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tests/guests/build.sh" >/dev/null
dotnet build "$root/src/P2PReplay.Tests" -c Release --nologo -v quiet >/dev/null
P2PREPLAY_BENCH=1 dotnet test "$root/src/P2PReplay.Tests" -c Release --no-build --nologo \
    --filter "FullyQualifiedName~SnapshotBenchmark" --logger "console;verbosity=detailed" | grep -o 'bench: .*'
