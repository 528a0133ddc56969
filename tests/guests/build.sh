#!/usr/bin/env bash
# Builds every tests/guests/*.c twice, statically:
#   build/glibc/NAME  with  gcc -static -O2
#   build/musl/NAME   with  musl-gcc -static -O2
# Skips outputs newer than their source and this script. Fails loudly if a
# compiler is missing or a result is not a static x86-64 ELF.
# Usage: tests/guests/build.sh [-f]   (-f: rebuild everything)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/build"
force=0
[[ "${1:-}" == "-f" ]] && force=1

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "build.sh: ERROR: compiler '$1' not found (apt-get install -y $2)" >&2
        exit 1
    }
}
need gcc gcc
need musl-gcc musl-tools
need file file

CFLAGS=(-static -O2 -g0 -Wall -Wextra -Wno-unused-result -std=gnu11)
mkdir -p "$out/glibc" "$out/musl"

built=0 skipped=0
for src in "$here"/*.c; do
    name="$(basename "$src" .c)"
    for libc in glibc musl; do
        cc=gcc
        [[ $libc == musl ]] && cc=musl-gcc
        dst="$out/$libc/$name"
        if [[ $force == 0 && -f "$dst" && "$dst" -nt "$src" && "$dst" -nt "$0" ]]; then
            skipped=$((skipped + 1))
            continue
        fi
        echo "  CC [$libc] $name"
        "$cc" "${CFLAGS[@]}" -o "$dst.tmp" "$src"
        mv -f "$dst.tmp" "$dst"
        built=$((built + 1))
    done
done

bad=0
for f in "$out"/glibc/* "$out"/musl/*; do
    desc="$(file -b "$f")"
    if [[ "$desc" != *"ELF 64-bit"*"x86-64"* || "$desc" != *"statically linked"* ]]; then
        echo "build.sh: ERROR: $f is not a static x86-64 ELF: $desc" >&2
        bad=1
    fi
done
[[ $bad == 0 ]] || exit 1
echo "build.sh: $built built, $skipped up to date, all static ELF ($out)"
