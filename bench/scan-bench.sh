#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# scan-bench.sh: benchmark #4 (issue 11): a scan of an unchanged
# partition against `cat` and `sha256sum` of it, in the same run.
#
#   bench/scan-bench.sh [BUILDDIR]
#
# A device of random data behind the livewatch filter, and lbd's image
# an identical copy (put in place by cp, so the first scan already finds
# everything the same).  Each rep restarts nbdkit (a new capture epoch:
# lb must scan the whole device) and times lb from "connected to" to
# "live (image consistent)" in its log; in the same rep, interleaved
# (lb first in odd reps, last in even ones), `cat DEVICE >/dev/null`
# and `sha256sum DEVICE`, all with a warm page cache (nothing dropped;
# the device and the image are in BENCH_DIR, tmpfs by default).  One
# lbd serves all reps: from the second rep on it answers from the
# region hashes it kept (lbd/scancache.h), and only lb reads.  Wire
# bytes are counted outside lb and lbd, by tests/relay.py between them
# (both directions, TLS records and all).  Medians, the spread, and the
# load average at each measurement are printed; the targets are a scan
# <= 1.3 x one cat, and <= 0.01 % of the device on the wire.
# bench/hash-micro.c (built and run first, BENCH_MICRO=0 skips it)
# gives the hash candidates' throughput on this machine.
#
# Environment (defaults in brackets):
#   BENCH_SIZE     device size, M or G suffix [1G]
#   BENCH_REPS     reps [5]
#   BENCH_DIR      folder for the device and the image [/dev/shm]
#   BENCH_LB_OPTS  extra lb options, e.g. --hash-block=4K []
#   BENCH_LBD_OPTS extra lbd options, e.g. -v []
#   BENCH_MICRO    1: build and run bench/hash-micro first [1]
#   BENCH_RELAY    0: lb connects to lbd directly and the wire is counted
#                  by the kernel instead (ss: bytes_acked and
#                  bytes_received of lb's TCP connection, read before lb
#                  stops): the relay, in Python, adds a latency to each
#                  message that a scan's pipeline feels [1]
#   BENCH_PERF     1: profile lb and lbd in each lb rep (perf record, at
#                  4999 Hz; the top symbols of each are printed at the
#                  end; perf's own cost slows the scan) [0]
#   BENCH_KEEP     non-empty: keep the run folder (logs) at the end

set -u
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

script_dir=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$script_dir/.." && pwd)
builddir=$(cd "${1:-$srcdir}" 2>/dev/null && pwd) || {
    echo "scan-bench: no such build folder: ${1:-$srcdir}" >&2; exit 2; }
FILTER=$builddir/.libs/nbdkit-livewatch-filter.so
MIRROR=$builddir/tests/lw-mirror
LB=$builddir/lb/lb
LBD=$builddir/lbd/lbd
PY=/usr/bin/python3
SIZE=${BENCH_SIZE:-1G}
REPS=${BENCH_REPS:-5}
DATA_DIR=${BENCH_DIR:-/dev/shm}
LB_OPTS=${BENCH_LB_OPTS:-}
MICRO=${BENCH_MICRO:-1}
RELAY=${BENCH_RELAY:-1}
PERF=${BENCH_PERF:-0}
if [ "$PERF" = 1 ]; then
    command -v perf >/dev/null || { echo "scan-bench: BENCH_PERF=1: perf not found" >&2; exit 1; }
fi

die () { echo "scan-bench: $*" >&2; exit 1; }
[[ $SIZE =~ ^[0-9]+[MG]$ ]] || die "BENCH_SIZE=$SIZE: give e.g. 512M or 1G"
[[ $REPS =~ ^[0-9]+$ ]] && [ "$REPS" -ge 1 ] || die "BENCH_REPS must be at least 1"
size_mb=${SIZE%[MG]}; [ "${SIZE: -1}" = G ] && size_mb=$((size_mb * 1024))
for f in "$LB" "$LBD" "$MIRROR"; do
    [ -x "$f" ] || die "$f not found: build first (make && make tests/lw-mirror)"
done
[ -f "$FILTER" ] || die "$FILTER not found: build first"
[ -x "$PY" ] || die "$PY not found"

# wait_for, now, load1, cpu_s, free_port, median, log_span, time_cmd,
# ss_bytes
. "$script_dir/bench-lib.sh"

RUN=$(mktemp -d /dev/shm/scanbench.XXXXXX) || die "mktemp failed"
if [ "$(cd "$DATA_DIR" && pwd)" = /dev/shm ]; then DATA=$RUN
else DATA=$(mktemp -d "$DATA_DIR/scanbench.XXXXXX") || die "mktemp in $DATA_DIR failed"
fi
declare -A PID=()
cleanup () {
    local n
    for n in "${!PID[@]}"; do kill "${PID[$n]}" 2>/dev/null; done
    for n in "${!PID[@]}"; do wait "${PID[$n]}" 2>/dev/null; done
    if [ -n "${BENCH_KEEP:-}" ]; then echo "scan-bench: kept $RUN $DATA" >&2
    else rm -rf "$RUN"; [ "$DATA" = "$RUN" ] || rm -rf "$DATA"; fi
}
trap cleanup EXIT
trap 'echo "scan-bench: interrupted" >&2; exit 130' INT TERM HUP
stop () {
    local p=${PID[$1]:-}
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
    unset "PID[$1]"
}

echo "scan-bench: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r)"
echo "scan-bench: $("$LB" --version); device $SIZE in $DATA_DIR; $REPS reps${LB_OPTS:+; lb options $LB_OPTS}; wire counted by $([ "$RELAY" = 0 ] && echo "the kernel (ss)" || echo "tests/relay.py")"
echo "scan-bench: load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$MICRO" = 1 ]; then
    b2=; [ -f /usr/include/blake2.h ] && b2="-DHAVE_LIBB2 -lb2"
    # shellcheck disable=SC2086
    gcc -O2 -I"$builddir" -I"$srcdir/common" -o "$RUN/hash-micro" \
        "$srcdir/bench/hash-micro.c" "$srcdir/common/lb_time.c" \
        "$srcdir/common/lb_hash.c" "$srcdir/common/lb_hash_avx2.c" \
        "$srcdir/common/lb_io.c" "$srcdir/common/lb_err.c" \
        -lgnutls -lxxhash -lpthread $b2 || die "cannot build bench/hash-micro.c"
fi

DEV=$DATA/dev IMG=$DATA/image.img KEY=$RUN/key
head -c 64 /dev/urandom >"$KEY"; chmod 600 "$KEY"
dd if=/dev/urandom of="$DEV" bs=1M count="$size_mb" status=none || die "cannot write $DEV"
cp "$DEV" "$IMG"
if [ "$MICRO" = 1 ]; then
    echo; echo "== hash candidates (bench/hash-micro.c, load $(load1))"
    cat "$DEV" >/dev/null
    "$RUN/hash-micro" 256 5 "$DEV"
fi
port=$(free_port) rport=$(free_port)
while [ "$rport" = "$port" ]; do rport=$(free_port); done
echo "client file=$IMG key=$KEY listen=127.0.0.1/$port type=simple name=scan" >"$RUN/lbd.conf"
"$LBD" ${BENCH_LBD_OPTS:-} --control="$RUN/lbd.ctl" "$RUN/lbd.conf" 2>>"$RUN/lbd.log" &
PID[lbd]=$!
wait_for 10 test -S "$RUN/lbd.ctl" || die "lbd did not start"
"$PY" "$srcdir/tests/relay.py" --count="$RUN/wire.count" "$rport" 127.0.0.1 \
    "$port" "$RUN/relay.pid" 2>>"$RUN/relay.log" &
PID[relay]=$!
wait_for 10 test -s "$RUN/wire.count" || die "relay did not start"

start_nbdkit () {
    rm -f "$RUN/dev.sock" "$RUN/dev.pid"
    nbdkit -f -U "$RUN/dev.sock" -P "$RUN/dev.pid" --exit-with-parent \
        --filter="$FILTER" file "$DEV" livewatch-unit=1 livewatch-dir="$RUN" \
        2>>"$RUN/nbdkit.log" &
    PID[nbdkit]=$!
    wait_for 20 test -s "$RUN/dev.pid" || die "nbdkit did not start"
    wait_for 20 "$MIRROR" --stat --dir="$RUN" 1 || die "the channel did not become ready"
}
converged () {
    "$MIRROR" --stat --dir="$RUN" 1 2>/dev/null | grep -q '^converged=1$' \
        && grep -q '^phase=live$' "$IMG.state" 2>/dev/null
}
wire_idle () { [ "$(cut -d' ' -f3 "$RUN/wire.count")" = 0 ]; }
lbport=$rport; [ "$RELAY" = 0 ] && lbport=$port

S=$RUN/scan.tsv; : >"$S"
echo; echo "== reps"
for rep in $(seq 1 "$REPS"); do
    order="lb cat sha256sum"
    [ $((rep % 2)) = 0 ] && order="sha256sum cat lb"
    for what in $order; do
        LOAD=$(load1)
        case $what in
        lb)
            stop nbdkit
            start_nbdkit
            read -r up0 down0 _ <"$RUN/wire.count"
            log=$RUN/lb-$rep.log
            lbd0=$(cpu_s "${PID[lbd]}")
            lbwrap=()
            if [ "$PERF" = 1 ]; then
                perf record -q -F 4999 -p "${PID[lbd]}" -o "$RUN/lbd-$rep.perf" \
                    2>>"$RUN/perf.log" &
                PID[perf]=$!
                lbwrap=(perf record -q -F 4999 -o "$RUN/lb-$rep.perf" --)
            fi
            # shellcheck disable=SC2086
            "${lbwrap[@]}" "$LB" --dir="$RUN" --retry=1 $LB_OPTS 1 "$DEV" 127.0.0.1 \
                "$lbport" "$KEY" 2>>"$log" &
            PID[lb]=$!
            wait_for 120 converged || die "rep $rep: not converged (BENCH_KEEP=1 keeps $log)"
            grep -q "full scan" "$log" || die "rep $rep: lb did not scan"
            secs=$(log_span "$log" "connected to" "live .image consistent")
            [ "$RELAY" = 0 ] && read -r sup sdown < <(ss_bytes "$port")
            lbc=$(cpu_s "${PID[lb]}")
            lbdc=$(awk -v a="$(cpu_s "${PID[lbd]}")" -v b="$lbd0" 'BEGIN {printf "%.2f", a - b}')
            if [ "$PERF" = 1 ]; then
                kill -INT "${PID[perf]}"; wait "${PID[perf]}" 2>/dev/null; unset "PID[perf]"
                kill -INT "${PID[lb]}"; wait "${PID[lb]}" 2>/dev/null; unset "PID[lb]"
            fi
            stop lb
            wait_for 10 wire_idle || die "the relay still has a connection open"
            read -r up down _ <"$RUN/wire.count"
            up=$((up - up0)) down=$((down - down0))
            [ "$RELAY" = 0 ] && up=$sup down=$sdown
            printf '%s\tlb\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$secs" "$lbc" "$lbdc" \
                "$up" "$down" "$LOAD" >>"$S"
            printf 'rep %d lb scan    %6.3fs  CPU lb %.2fs lbd %.2fs  wire %d B up %d B down  load %s\n' \
                "$rep" "$secs" "$lbc" "$lbdc" "$up" "$down" "$LOAD" ;;
        cat|sha256sum)
            if [ "$what" = cat ]; then r=$(time_cmd cat "$DEV")
            else r=$(time_cmd sha256sum "$DEV"); fi
            printf '%s\t%s\t%s\t%s\t-\t-\t-\t%s\n' "$rep" "$what" "${r% *}" "${r#* }" "$LOAD" >>"$S"
            printf 'rep %d %-11s %6.3fs  CPU %.2fs  load %s\n' "$rep" "$what" "${r% *}" "${r#* }" "$LOAD" ;;
        esac
    done
done

col () { awk -F'\t' -v k="$2" -v c="$1" '$2 == k {print $c}' "$S"; }
spread () { col "$1" "$2" | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {printf "%s-%s", a, b}'; }
lbs=$(col 3 lb | median) cats=$(col 3 cat | median) shas=$(col 3 sha256sum | median)
paired=$(awk -F'\t' '$2 == "lb" {l[$1] = $3} $2 == "cat" {c[$1] = $3}
    END {for (k in l) if (c[k] > 0) print l[k] / c[k]}' "$S" | median)
up=$(col 6 lb | median) down=$(col 7 lb | median)
bytes=$((size_mb << 20))
echo
echo "== summary: medians of $REPS interleaved reps (spread min-max)"
echo
echo "| what | seconds | spread | CPU s (lb + lbd) |"
echo "|---|---:|---:|---:|"
printf '| lb scan, unchanged %s | %s | %s | %s + %s |\n' "$SIZE" "$lbs" "$(spread 3 lb)" \
    "$(col 4 lb | median)" "$(col 5 lb | median)"
printf '| cat | %s | %s | %s |\n' "$cats" "$(spread 3 cat)" "$(col 4 cat | median)"
printf '| sha256sum | %s | %s | %s |\n' "$shas" "$(spread 3 sha256sum)" "$(col 4 sha256sum | median)"
echo
printf 'scan / cat: %s (median of the per-rep ratios: %s); target <= 1.3\n' \
    "$(div "$lbs" "$cats")" "$(awk -v x="$paired" 'BEGIN {printf "%.3f", x}')"
printf 'wire: %s B up + %s B down = %s %% of the device; target <= 0.01 %%\n' "$up" "$down" \
    "$(awk -v a="$up" -v b="$down" -v s="$bytes" 'BEGIN {printf "%.4f", (a + b) * 100 / s}')"
echo "load average (1 min) at the measurements: $(cut -f8 "$S" | sort -g | paste -sd' ')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$PERF" = 1 ]; then
    for who in lb lbd; do
        echo; echo "== perf: $who, rep 1 (perf report --sort dso,sym, top 15)"
        perf report -i "$RUN/$who-1.perf" --sort dso,sym --stdio 2>/dev/null \
            | grep -v '^#' | grep -v '^$' | head -15
    done
fi
