#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# clients-bench.sh: many clients on one lbd (issue 11, benchmarks 8 and 9).
#
#   bench/clients-bench.sh [BUILDDIR]
#
# BENCH_CLIENTS (32) protected disks of BENCH_CSIZE (128M) each, every
# one served by its own nbdkit with the filter and followed by its own lb
# (TLS), all to one lbd (one listening socket, the clients told apart by
# name), everything on loopback.  Two parts:
#
#  idle   all live, nothing written, for BENCH_IDLE (60) seconds: CPU
#         seconds and wakeups (context switches of every thread,
#         /proc/PID/task/*/status) per second of one nbdkit, one lb and
#         lbd; resident memory (VmRSS) of every lb (max) and of lbd, and
#         lbd's against an lbd with one client (its growth per client).
#         Targets: no busy polling; lb ≤ its queue + 32 MiB; lbd ≤ 16 MiB
#         a client.
#  write  every client writes BENCH_WRITE (128M, 1 MiB sequential writes,
#         fio) at once; each client's time from the start until its lb is
#         live again with nothing left (lb --status exit 0, polled every
#         0.05 s), against the same write by one client alone (the
#         baseline, run first, with only that client and lbd running).
#         Reported: aggregate MB/s against one
#         client's, and the slowest client's time over the fastest's
#         (starvation).  Targets: aggregate ≥ one client's; max/min ≤ 2.
#
# Needs nbdkit, fio, /usr/bin/python3.  Not part of make check.
# Environment: BENCH_CLIENTS [32], BENCH_CSIZE [128M], BENCH_IDLE [60],
# BENCH_WRITE [128M], BENCH_KEEP (keep the run folder).

set -u
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

script_dir=$(cd "$(dirname "$0")" && pwd)
builddir=$(cd "${1:-$script_dir/..}" 2>/dev/null && pwd) || {
    echo "clients-bench: no such build folder: ${1:-$script_dir/..}" >&2; exit 2; }
. "$script_dir/bench-lib.sh"
FILTER=$builddir/.libs/nbdkit-livewatch-filter.so
LB=$builddir/lb/lb
LBD=$builddir/lbd/lbd
N=${BENCH_CLIENTS:-32}
CSIZE=${BENCH_CSIZE:-128M}
IDLE=${BENCH_IDLE:-60}
WRITE=${BENCH_WRITE:-128M}

die () { echo "clients-bench: $*" >&2; exit 1; }
command -v nbdkit >/dev/null && command -v fio >/dev/null || die "needs nbdkit and fio"
[ -x "$LB" ] && [ -x "$LBD" ] && [ -f "$FILTER" ] || die "build first (make)"
[ "$N" -ge 2 ] || die "BENCH_CLIENTS must be at least 2"
write_b=$(numfmt --from=iec "$WRITE") || die "bad BENCH_WRITE"

RUN=$(mktemp -d /dev/shm/clibench.XXXXXX) || die "mktemp failed"
declare -A PID=()
cleanup () {
    local n
    for n in "${!PID[@]}"; do kill "${PID[$n]}" 2>/dev/null; done
    for n in "${!PID[@]}"; do wait "${PID[$n]}" 2>/dev/null; done
    if [ -n "${BENCH_KEEP:-}" ]; then echo "clients-bench: kept $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
stop () {
    local p=${PID[$1]:-}
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
    unset "PID[$1]"
}

KEY=$RUN/key; head -c 64 /dev/urandom >"$KEY"; chmod 600 "$KEY"
PORT=$(free_port)
: >"$RUN/lbd.conf"
for i in $(seq 1 "$N"); do
    echo "client name=c$i file=$RUN/c$i.img key=$KEY listen=127.0.0.1/$PORT type=simple" >>"$RUN/lbd.conf"
done
head -1 "$RUN/lbd.conf" >"$RUN/lbd-one.conf"

start_lbd () {                  # start_lbd CONFIG
    rm -f "$RUN/lbd.ctl"
    "$LBD" --control="$RUN/lbd.ctl" "$1" 2>>"$RUN/lbd.log" &
    PID[lbd]=$!
    wait_for 10 test -S "$RUN/lbd.ctl" || die "lbd did not start"
}
start_client () {               # start_client I
    local i=$1
    truncate -s "$CSIZE" "$RUN/d$i"
    rm -f "$RUN/n$i.pid"
    nbdkit -f -U "$RUN/n$i.sock" -P "$RUN/n$i.pid" --filter="$FILTER" file "$RUN/d$i" \
        livewatch-unit="$i" livewatch-dir="$RUN" 2>>"$RUN/n$i.log" &
    PID[n$i]=$!
    wait_for 20 test -s "$RUN/n$i.pid" || die "nbdkit $i did not start"
    "$LB" --dir="$RUN" --retry=1 --name="c$i" "$i" "$RUN/d$i" 127.0.0.1 "$PORT" "$KEY" \
        2>>"$RUN/lb$i.log" &
    PID[lb$i]=$!
}
live () { "$LB" --status --dir="$RUN" "$1" >/dev/null 2>&1; }
all_live () { local i; for i in "$@"; do live "$i" || return 1; done; }
rss_kb () { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
# wakeups PID: context switches of all its threads so far.
wakeups () {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(non)?voluntary_ctxt_switches:/ {s += $2} END {print s + 0}'
}

# write_all I...: clients I... each write WRITE at once; prints one line
# per client "I SECONDS" (start to live again), polled every 0.05 s.
write_all () {
    local i t0 left done_at=() fpids=()
    t0=$(now)
    for i in "$@"; do
        fio --name=w$i --ioengine=nbd --uri="nbd+unix:///?socket=$RUN/n$i.sock" \
            --rw=write --bs=1M --iodepth=4 --size="$write_b" --numjobs=1 \
            --output="$RUN/fio$i.log" >/dev/null 2>&1 &
        fpids+=($!)
    done
    left=("$@")
    # First every writer done, then each lb live again.
    wait "${fpids[@]}"
    local deadline=$(( $(date +%s) + 600 ))
    while [ ${#left[@]} -gt 0 ] && [ "$(date +%s)" -lt "$deadline" ]; do
        local next=()
        for i in "${left[@]}"; do
            if live "$i"; then echo "$i $(sub "$(now)" "$t0")"; else next+=("$i"); fi
        done
        left=("${next[@]}")
        [ ${#left[@]} -gt 0 ] && sleep 0.05
    done
    [ ${#left[@]} = 0 ] || die "clients ${left[*]} not live within 600 s"
}

echo "clients-bench: $(nproc) CPUs, $(nbdkit --version), $N clients of $CSIZE, idle ${IDLE}s, write $WRITE each; load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- one client alone: lbd's memory with one client, the baseline write ----
start_lbd "$RUN/lbd-one.conf"
start_client 1
wait_for 120 live 1 || die "client 1 not live"
sleep 2
lbd_one_kb=$(rss_kb "${PID[lbd]}")
read -r _ one_s < <(write_all 1)
echo "one client alone: lbd RSS $lbd_one_kb KiB; $WRITE written and mirrored in $one_s s ($(mbps "$write_b" "$one_s") MB/s)"
stop lb1; stop lbd

# --- all clients ------------------------------------------------------------
start_lbd "$RUN/lbd.conf"
for i in $(seq 1 "$N"); do [ -n "${PID[n$i]:-}" ] && continue; start_client "$i"; done
"$LB" --dir="$RUN" --retry=1 --name=c1 1 "$RUN/d1" 127.0.0.1 "$PORT" "$KEY" 2>>"$RUN/lb1.log" &
PID[lb1]=$!
wait_for 300 all_live $(seq 1 "$N") || die "not all clients became live"
sleep 2

# idle
declare -A c0 w0
for p in "${PID[n1]}" "${PID[lb1]}" "${PID[lbd]}"; do c0[$p]=$(cpu_ticks "$p"); w0[$p]=$(wakeups "$p"); done
t0=$(now)
sleep "$IDLE"
secs=$(sub "$(now)" "$t0")
echo
echo "idle ${secs}s, $N clients live:"
echo "| process | CPU s/s | wakeups/s | RSS |"
echo "|---|---:|---:|---:|"
for what in n1:nbdkit lb1:lb lbd:lbd; do
    p=${PID[${what%%:*}]}
    cpu=$(awk -v t="$(( $(cpu_ticks "$p") - c0[$p] ))" -v hz="$CLK_TCK" -v s="$secs" 'BEGIN {printf "%.4f", t / hz / s}')
    wk=$(awk -v w="$(( $(wakeups "$p") - w0[$p] ))" -v s="$secs" 'BEGIN {printf "%.1f", w / s}')
    label="${what#*:} (one of $N)"; [ "$what" = lbd:lbd ] && label="lbd (serving all $N)"
    echo "| $label | $cpu | $wk | $(( $(rss_kb "$p") / 1024 )) MiB |"
done
lbmax=0
for i in $(seq 1 "$N"); do r=$(rss_kb "${PID[lb$i]}"); [ "$r" -gt "$lbmax" ] && lbmax=$r; done
lbd_kb=$(rss_kb "${PID[lbd]}")
echo
echo "lb RSS, the largest of $N: $((lbmax / 1024)) MiB (its queue: the filter's default 16 MiB; target ≤ queue + 32 MiB)"
echo "lbd RSS: $((lbd_kb / 1024)) MiB with $N clients, $((lbd_one_kb / 1024)) MiB with one: $(( (lbd_kb - lbd_one_kb) / (N - 1) )) KiB more per client (target ≤ 16 MiB a client)"

# write
write_all $(seq 1 "$N") >"$RUN/times"
slow=$(awk '{print $2}' "$RUN/times" | sort -g | tail -1)
fast=$(awk '{print $2}' "$RUN/times" | sort -g | head -1)
agg=$(mbps "$(( write_b * N ))" "$slow")
echo
echo "write: $N clients x $WRITE at once: all mirrored after $slow s (fastest $fast s): aggregate $agg MB/s against one client's $(mbps "$write_b" "$one_s") MB/s = $(div "$agg" "$(mbps "$write_b" "$one_s")") x; slowest/fastest $(div "$slow" "$fast")"
echo "clients-bench: load at end $(cut -d' ' -f1-3 /proc/loadavg)"
