#!/usr/bin/env bash
# Builds the benchmark guests (static, gcc -O2) into bench/build/ and the C KVM
# baseline (dynamic is fine). Skips up-to-date outputs; -f rebuilds everything.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/build"
force=0
[[ "${1:-}" == "-f" ]] && force=1
command -v gcc >/dev/null || { echo "bench/build.sh: ERROR: gcc not found" >&2; exit 1; }
mkdir -p "$out"

stale() { [[ $force == 1 || ! -f "$1" || "$2" -nt "$1" || "$0" -nt "$1" ]]; }

for src in "$here"/guests/*.c; do
    name="$(basename "$src" .c)"
    if stale "$out/$name" "$src"; then
        echo "  CC [static] $name"
        gcc -static -O2 -g0 -Wall -Wextra -o "$out/$name.tmp" "$src"
        mv -f "$out/$name.tmp" "$out/$name"
    fi
    file -b "$out/$name" | grep -q 'statically linked' || { echo "bench/build.sh: ERROR: $name is not static" >&2; exit 1; }
done
if stale "$out/kvm-exit-baseline" "$here/kvm-exit-baseline.c"; then
    echo "  CC kvm-exit-baseline"
    gcc -O2 -g0 -Wall -Wextra -o "$out/kvm-exit-baseline.tmp" "$here/kvm-exit-baseline.c"
    mv -f "$out/kvm-exit-baseline.tmp" "$out/kvm-exit-baseline"
fi
echo "bench/build.sh: ok ($out)"
