#!/usr/bin/env bash
# Side-by-side benchmarks: native vs `p2preplay run`, plus the C KVM baseline.
#
#   bench/run.sh P2PREPLAY_BIN [--quick]
#
# Prints a markdown report on stdout (progress goes to stderr). Takes ~1-2 min
# (--quick: fewer repetitions, smaller N). Environment overrides:
#   P2PREPLAY_RUN_ARGS  extra args for `run` before `--` (default: "--memory 1G")
#   REPS                repetitions for (a) and (b)         (default 5, quick 3)
#   STARTUP_RUNS        runs for (c)                       (default 20, quick 10)
#   SYSCALL_N           syscalls per getpid/devnull run    (default 50000, quick 20000)
#   HASH_MIB            MiB hashed in (a)                  (default 256)
#   NO_HYPERFINE=1      use the bash loop for (c) even if hyperfine is installed
#
# (a) hash: HASH_MIB MiB fill+hash, alternating native / VM runs; median wall
#     times and their ratio. The hash line must be identical.
# (b) getpid, devnull: per-syscall cost under the VM = (T(N) - T(0)) / N, with
#     medians, compared with the C baseline's per-exit cost (bench/build/
#     kvm-exit-baseline syscall): added us per syscall and percent above raw.
# (c) true: median wall time of STARTUP_RUNS runs native vs VM: added start-up ms.
#     Uses hyperfine (-N, no shell) when installed, else a bash loop.
set -uo pipefail

usage() { echo "usage: bench/run.sh P2PREPLAY_BIN [--quick]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
BIN="$1"
QUICK=0
[[ "${2:-}" == "--quick" ]] && QUICK=1
[[ -x "$BIN" ]] || { echo "bench/run.sh: $BIN is not an executable file" >&2; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

here="$(cd "$(dirname "$0")" && pwd)"
B="$here/build"
read -r -a RUN_ARGS <<<"${P2PREPLAY_RUN_ARGS:---memory 1G}"
if [[ $QUICK == 1 ]]; then
    REPS="${REPS:-3}" STARTUP_RUNS="${STARTUP_RUNS:-10}" SYSCALL_N="${SYSCALL_N:-20000}"
else
    REPS="${REPS:-5}" STARTUP_RUNS="${STARTUP_RUNS:-20}" SYSCALL_N="${SYSCALL_N:-50000}"
fi
HASH_MIB="${HASH_MIB:-256}"

"$here/build.sh" >&2 || { echo "bench/run.sh: build failed" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

log() { echo "[bench] $*" >&2; }
vm() { "$BIN" run "${RUN_ARGS[@]}" -- "$@"; }

# timed CMD...: runs CMD with stdout to $work/out, stderr to $work/err; sets
# T (seconds, float) and RC. Uses $EPOCHREALTIME: no fork for the clock.
timed() {
    local t0 t1
    t0=$EPOCHREALTIME
    "$@" >"$work/out" 2>"$work/err"
    RC=$?
    t1=$EPOCHREALTIME
    T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
}
median() { # numbers as arguments
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

FAILS=()
fail() { FAILS+=("$*"); log "FAIL: $*"; }

# ---------------------------------------------------------------- baseline
log "C baseline: kvm-exit-baseline (syscall, immediate)"
base_n=$((QUICK ? 10000 : 20000))
"$B/kvm-exit-baseline" syscall "$base_n" "$REPS" >"$work/base_sys" 2>&1 || fail "kvm-exit-baseline syscall: $(tail -1 "$work/base_sys")"
"$B/kvm-exit-baseline" immediate "$base_n" "$REPS" >"$work/base_imm" 2>&1 || fail "kvm-exit-baseline immediate: $(tail -1 "$work/base_imm")"
"$B/kvm-exit-baseline" out "$base_n" "$REPS" >"$work/base_out" 2>&1 || fail "kvm-exit-baseline out: $(tail -1 "$work/base_out")"
per_exit() { sed -nE 's/^[a-z]+: .* ([0-9.]+) us\/exit \(median.*/\1/p' "$1" | tail -1; }
BASE_SYS="$(per_exit "$work/base_sys")"; BASE_SYS="${BASE_SYS:-nan}"
BASE_IMM="$(per_exit "$work/base_imm")"; BASE_IMM="${BASE_IMM:-nan}"
BASE_OUT="$(per_exit "$work/base_out")"; BASE_OUT="${BASE_OUT:-nan}"
BASE_PATH="$(grep -o 'kvm_pvm path\|VMX/SVM path' "$work/base_sys" | head -1)"

# ---------------------------------------------------------------- (a) hash
log "(a) hash $HASH_MIB MiB: $REPS alternating native/VM runs"
hn=() hv=()
timed "$B/hash" "$HASH_MIB"; native_hash="$(cat "$work/out")" # warm-up (page cache, CPU clocks)
for ((i = 1; i <= REPS; i++)); do
    timed "$B/hash" "$HASH_MIB"
    [[ $RC == 0 ]] && hn+=("$T") || fail "hash native rc=$RC"
    timed vm "$B/hash" "$HASH_MIB"
    if [[ $RC == 0 && "$(cat "$work/out")" == "$native_hash" ]]; then
        hv+=("$T")
    else
        fail "hash under VM: rc=$RC out='$(head -c 200 "$work/out")' err='$(head -c 300 "$work/err")'"
        break
    fi
done
HN="$(median "${hn[@]}")"
HV="$(median "${hv[@]}")"

# ---------------------------------------------------------------- (b) getpid, devnull
declare -A PER_NATIVE PER_VM PER_BASE
for g in getpid devnull; do
    log "(b) $g: N=$SYSCALL_N and N=0, $REPS runs each, native and VM"
    tn_big=() tn_zero=() tv_big=() tv_zero=() tb=()
    for ((i = 1; i <= REPS; i++)); do
        # The C baseline runs interleaved with the VM runs, so both see the same machine noise.
        "$B/kvm-exit-baseline" syscall "$SYSCALL_N" 1 >"$work/b1" 2>&1 && tb+=("$(per_exit "$work/b1")")
        timed "$B/$g" "$SYSCALL_N"; [[ $RC == 0 ]] && tn_big+=("$T")
        timed "$B/$g" 0; [[ $RC == 0 ]] && tn_zero+=("$T")
        timed vm "$B/$g" "$SYSCALL_N"
        if [[ $RC != 0 ]] || ! grep -q "^$g: $SYSCALL_N " "$work/out"; then
            fail "$g under VM: rc=$RC out='$(head -c 200 "$work/out")' err='$(head -c 300 "$work/err")'"
            break
        fi
        tv_big+=("$T")
        timed vm "$B/$g" 0; [[ $RC == 0 ]] && tv_zero+=("$T")
    done
    PER_BASE[$g]="$(median "${tb[@]}")"
    PER_NATIVE[$g]="$(calc '%.3f' "($(median "${tn_big[@]}") - $(median "${tn_zero[@]}")) * 1e6 / $SYSCALL_N")"
    if [[ ${#tv_big[@]} -gt 0 && ${#tv_zero[@]} -gt 0 ]]; then
        PER_VM[$g]="$(calc '%.2f' "($(median "${tv_big[@]}") - $(median "${tv_zero[@]}")) * 1e6 / $SYSCALL_N")"
    else
        PER_VM[$g]="nan"
    fi
done

# ---------------------------------------------------------------- (c) true
log "(c) true: start-up, $STARTUP_RUNS runs native and VM"
SU_METHOD=""
if [[ -z "${NO_HYPERFINE:-}" ]] && command -v hyperfine >/dev/null 2>&1 && [[ "$BIN" != *" "* && "$B" != *" "* ]]; then
    SU_METHOD="hyperfine -N, $STARTUP_RUNS runs, 3 warm-up"
    if hyperfine -N --warmup 3 --runs "$STARTUP_RUNS" --export-csv "$work/su.csv" \
        "$B/true" "$BIN run ${RUN_ARGS[*]} -- $B/true" >"$work/hf.txt" 2>&1; then
        # CSV: command,mean,stddev,median,user,system,min,max (seconds)
        SN="$(awk -F, 'NR == 2 { print $4 }' "$work/su.csv")"
        SV="$(awk -F, 'NR == 3 { print $4 }' "$work/su.csv")"
    else
        fail "true under VM (hyperfine): $(tail -3 "$work/hf.txt" | tr '\n' ' ')"
        SN=nan SV=nan
    fi
else
    SU_METHOD="bash loop (\$EPOCHREALTIME), $STARTUP_RUNS alternating runs"
    sn=() sv=()
    for ((i = 1; i <= STARTUP_RUNS; i++)); do
        timed "$B/true"; [[ $RC == 0 ]] && sn+=("$T")
        timed vm "$B/true"
        if [[ $RC != 0 ]]; then fail "true under VM: rc=$RC err='$(head -c 300 "$work/err")'"; break; fi
        sv+=("$T")
    done
    SN="$(median "${sn[@]}")"
    SV="$(median "${sv[@]}")"
fi

# ---------------------------------------------------------------- report
isnum() { [[ "$1" =~ ^[0-9.eE+-]+$ ]]; }
ms() { isnum "$1" && calc '%.1f' "$1 * 1000" || echo "n/a"; }
echo "## p2preplay benchmarks"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)."
echo "KVM module: $(ls -d /sys/module/kvm_pvm /sys/module/kvm_intel /sys/module/kvm_amd 2>/dev/null | xargs -r -n1 basename | paste -sd, - || true)."
echo "p2preplay: \`$BIN run ${RUN_ARGS[*]} -- ...\`; repetitions: $REPS, syscalls per run: $SYSCALL_N."
echo
echo "### C baseline (bench/kvm-exit-baseline, the floor)"
echo
echo "| measurement | us per exit (median) |"
echo "|---|---|"
echo "| KVM_RUN with immediate_exit=1 (ioctl round trip) | $BASE_IMM |"
echo "| CPL3 \`out\` to an allowed port (bare exit) | $BASE_OUT |"
echo "| \`syscall\` via LSTAR stub, SYNC_REGS, minimal handling ($BASE_PATH) | $BASE_SYS |"
echo
echo "### (a) compute: hash $HASH_MIB MiB"
echo
echo "| | native | p2preplay | ratio |"
echo "|---|---|---|---|"
if isnum "$HN" && isnum "$HV"; then
    echo "| median wall time (ms) | $(ms "$HN") | $(ms "$HV") | $(calc '%.2fx' "$HV / $HN") |"
else
    echo "| median wall time (ms) | $(ms "$HN") | n/a | n/a |"
fi
echo
echo "### (b) syscall cost: (T(N) - T(0)) / N"
echo
echo "| guest | native us/syscall | p2preplay us/syscall | C baseline us/exit (interleaved) | added over baseline (us) | % above raw |"
echo "|---|---|---|---|---|---|"
for g in getpid devnull; do
    pv="${PER_VM[$g]}"
    pb="${PER_BASE[$g]}"
    if isnum "$pv" && isnum "$pb"; then
        echo "| $g | ${PER_NATIVE[$g]} | $pv | $pb | $(calc '%.2f' "$pv - $pb") | $(calc '%.0f%%' "($pv - $pb) * 100 / $pb") |"
    else
        echo "| $g | ${PER_NATIVE[$g]} | n/a | $pb | n/a | n/a |"
    fi
done
echo
echo "### (c) start-up: true ($SU_METHOD)"
echo
echo "| | native | p2preplay | added |"
echo "|---|---|---|---|"
if isnum "$SN" && isnum "$SV"; then
    echo "| median wall time (ms) | $(ms "$SN") | $(ms "$SV") | $(calc '%.1f' "($SV - $SN) * 1000") ms |"
else
    echo "| median wall time (ms) | $(ms "$SN") | n/a | n/a |"
fi
echo
if [[ ${#FAILS[@]} -gt 0 ]]; then
    echo "### Failures"
    echo
    for f in "${FAILS[@]}"; do echo "- $f"; done
    exit 1
fi
