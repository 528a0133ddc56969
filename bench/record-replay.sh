#!/usr/bin/env bash
# Record/replay benchmarks, side by side in one run:
#   bench/record-replay.sh P2PREPLAY_BIN
# For each workload: plain `run`, `run --record` and `replay`, alternating, REPS times (default 5); prints medians,
# record overhead (record / run), replay speed (replay / record), log bytes, bytes per exit and the log rate in
# Mbit/s of recorded run time. Environment: REPS, DIGEST_EVERY (passed to --digest-every when set).
set -uo pipefail
[[ $# -ge 1 && -x "$1" ]] || { echo "usage: bench/record-replay.sh P2PREPLAY_BIN" >&2; exit 2; }
BIN="$(realpath "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
B="$here/build"
REPS="${REPS:-5}"
"$here/build.sh" >&2 || exit 1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
head -c $((32 << 20)) /dev/urandom | base64 > "$work/stdin.txt"   # ~43 MiB of text
DIGEST_ARGS=()
[[ -n "${DIGEST_EVERY:-}" ]] && DIGEST_ARGS=(--digest-every "$DIGEST_EVERY")

now() { echo "$EPOCHREALTIME"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

echo "## Record/replay benchmarks"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, KVM module: $(ls -d /sys/module/kvm_pvm /sys/module/kvm_intel /sys/module/kvm_amd 2>/dev/null | xargs -r -n1 basename | paste -sd, -); $REPS alternating repetitions, medians.${DIGEST_EVERY:+ --digest-every $DIGEST_EVERY.}"
echo
echo "| workload | run (ms) | record (ms) | replay (ms) | record / run | replay / record | exits | digests | log bytes | bytes/exit | log Mbit/s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"

bench() { # name stdin-file args...
    local name="$1" input="$2"; shift 2
    local tr=() tc=() tp=() t0 summary=""
    for ((i = 1; i <= REPS; i++)); do
        t0=$(now); "$BIN" run --memory 1G -- "$@" <"$input" >"$work/out.run" 2>/dev/null; tr+=("$(calc '%.6f' "$(now) - $t0")")
        t0=$(now); "$BIN" run --memory 1G --record "$work/$name.log" "${DIGEST_ARGS[@]}" -- "$@" <"$input" >"$work/out.rec" 2>/dev/null; tc+=("$(calc '%.6f' "$(now) - $t0")")
        t0=$(now); "$BIN" replay --quiet "$work/$name.log" </dev/null >/dev/null 2>"$work/replay.err"; tp+=("$(calc '%.6f' "$(now) - $t0")")
        summary="$(grep -o 'replay verified: .*' "$work/replay.err")" || { echo "| $name | replay failed: $(tail -1 "$work/replay.err") |"; return; }
        cmp -s "$work/out.run" "$work/out.rec" || { echo "| $name | output differs between run and record |"; return; }
    done
    local R C P exits digests bytes
    R=$(median "${tr[@]}"); C=$(median "${tc[@]}"); P=$(median "${tp[@]}")
    exits=$(sed -E 's/replay verified: ([0-9]+) exits.*/\1/' <<<"$summary")
    digests=$(sed -E 's/.* ([0-9]+) digests checked.*/\1/' <<<"$summary")
    bytes=$(stat -c %s "$work/$name.log")
    echo "| $name | $(calc '%.0f' "$R * 1000") | $(calc '%.0f' "$C * 1000") | $(calc '%.0f' "$P * 1000") | $(calc '%.3f' "$C / $R") | $(calc '%.2f' "$P / $C") | $exits | $digests | $bytes | $(calc '%.1f' "$bytes / $exits") | $(calc '%.2f' "$bytes * 8 / $C / 1e6") |"
}

bench hash-256MiB /dev/null "$B/hash" 256
bench getpid-100k /dev/null "$B/getpid" 100000
bench clock-100k /dev/null "$B/clock" 100000
bench stdin-43MiB "$work/stdin.txt" "$B/catin"
