#!/usr/bin/env bash
# Runs the test workloads under `p2preplay run --trace-syscalls` and lists the syscalls they made:
# implemented ones with call counts, and those answered ENOSYS because they are not implemented.
#   scripts/syscall-report.sh [P2PREPLAY_BIN]   (default out/p2preplay)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(realpath "${1:-out/p2preplay}")"
tests/guests/build.sh >/dev/null
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
printf 'banana\napple\ncherry\n' > "$root/fruit.txt"
gzip -k "$root/fruit.txt" && mv "$root/fruit.txt.gz" "$root/packed.gz"
trace="$root/.trace"
: > "$trace"
run() { "$BIN" run --root "$root" --trace-syscalls "$@" </dev/null >/dev/null 2>>"$trace" || true; }
for libc in glibc musl; do
    for p in hello malloc time random nullderef abort stdin_cat; do run -- "$PWD/tests/guests/build/$libc/$p"; done
    run -- "$PWD/tests/guests/build/$libc/exitcode" 3
    run --env A=1 -- "$PWD/tests/guests/build/$libc/argv_env" x A
    run -- "$PWD/tests/guests/build/$libc/files" scratch
done
bb=/bin/busybox
for args in "echo hi" "cat fruit.txt" "sha256sum fruit.txt" "md5sum fruit.txt" "wc fruit.txt" "sort fruit.txt" \
    "uniq fruit.txt" "head -n1 fruit.txt" "tail -n1 fruit.txt" "tr a-z A-Z" "cut -c1-3 fruit.txt" "seq 3" "expr 1 + 2" \
    "printf %s\\n x" "awk {print} fruit.txt" "sed s/a/b/ fruit.txt" "grep an fruit.txt" "gzip -c fruit.txt" \
    "gunzip -c packed.gz" "gunzip packed.gz" "ls -l" "mkdir d" "cp fruit.txt c" "mv fruit.txt m" "rm fruit.txt" \
    "date -u" "sleep 0.01"; do
    # shellcheck disable=SC2086
    run -- $bb $args
done
run -- $bb sh -c 'i=0; while [ $i -lt 3 ]; do i=$((i+1)); done; f() { echo $1; }; f x; read -r l <<EOF
here
EOF
echo $l > /tmp/x; while read -r y; do echo $y; done < /tmp/x'
run -- $bb sh -c 'echo a | cat'

echo "## Syscalls made by the test workloads"
echo
echo "Implemented (name: calls):"
grep -E '^[a-z_0-9]+\(' "$trace" | grep -v 'not implemented' | sed -E 's/\(.*//' | sort | uniq -c | sort -k2 | awk '{ printf "%s: %s\n", $2, $1 }' | paste -sd' ' | fold -s -w 110
echo
echo "Answered ENOSYS (not implemented; name: calls):"
grep -E '^[a-z_0-9]+\(.*\(not implemented\)$' "$trace" | sed -E 's/\(.*//' | sort | uniq -c | awk '{ printf "%s: %s\n", $2, $1 }' | paste -sd' '
