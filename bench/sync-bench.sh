#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# sync-bench.sh: live mode under fsync-heavy writers (issue 11, benchmark
# #10).
#
#   bench/sync-bench.sh [BUILDDIR [BASEDIR]]
#
# BUILDDIR (default: the repository this script lives in) holds lb/lb,
# lbd/lbd, .libs/nbdkit-livewatch-filter.so and tests/lw-mirror ("make
# check" builds it).  BASEDIR, if given, is a second build (e.g. of the
# tree before a change) measured in the same run.  Needs root (loop
# mounts), nbdfuse, mkfs.ext4, python3 with sqlite3, fio.  Not part of
# "make check".
#
# Each run: a fresh 256 MiB disk file behind nbdkit --filter=livewatch,
# ext4 made on it through nbdfuse and a loop device, then a writer for
# BENCH_SECONDS on that ext4:
#   sqlite  tests/sqlite-txn.py: SQLite in WAL mode, synchronous=FULL,
#           one 1500-byte row per transaction (an fsync per commit)
#   fio     fio 4k random writes, fsync after every write (--fsync=1),
#           psync, on a 64 MiB file
# in these configurations, their order rotated rep by rep (interleaved,
# so that machine noise spreads over all):
#   A  the filter with no consumer                        (baseline)
#   B  BUILDDIR's lb (TLS) -> lbd, converged before the writer starts
#   C  the same with BASEDIR's filter, lb and lbd (if BASEDIR is given)
# For B and C, every 100 ms a sampler reads lbd's state file: the image
# counts as live when it says phase=live, consistent=1 (lb tells lbd at
# once when it leaves live mode, lb/sink.c lb_sink_phase).  Also the
# filter's degrades during the run (its channel header).
# Reported: transactions (or fsyncs) per second, medians and spread;
# B/A and C/A, of the medians and paired within each rep (target
# >= 0.9); the live fraction (target >= 95 %); lbd's commits per second
# and SYNCs per commit (lbd -v logs each commit).
#
# Environment (defaults in brackets):
#   BENCH_SECONDS    writer seconds per run [10]
#   BENCH_REPS       reps [3]
#   BENCH_WORKLOADS  [sqlite fio]
#   BENCH_DIR        folder for the disks and images [/var/tmp]: on a
#                    disk, so that the fsyncs of the writer's path and of
#                    lbd cost what they cost (tmpfs would make them free)
#   BENCH_SRV_DIR    folder for lbd's folder (its image and state file)
#                    if not BENCH_DIR's, e.g. /dev/shm: lbd's fsyncs then
#                    cost nothing, as where lbd has its own disk [BENCH_DIR]
#   BENCH_LB_OPTS    extra options for lb, e.g. "-v" []
#   BENCH_KEEP       non-empty: keep the run folder

set -u
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

script_dir=$(cd "$(dirname "$0")" && pwd)
die () { echo "sync-bench: $*" >&2; exit 1; }
builddir=$(cd "${1:-$script_dir/..}" 2>/dev/null && pwd) || die "no such build folder: $1"
basedir=
if [ -n "${2:-}" ]; then basedir=$(cd "$2" 2>/dev/null && pwd) || die "no such build folder: $2"; fi
PY=/usr/bin/python3
TXN="$PY $script_dir/../tests/sqlite-txn.py"
SECS=${BENCH_SECONDS:-10}
REPS=${BENCH_REPS:-3}
WORKLOADS=${BENCH_WORKLOADS:-sqlite fio}
DATA_DIR=${BENCH_DIR:-/var/tmp}

[[ $SECS =~ ^[0-9]+$ && $SECS -ge 1 ]] || die "BENCH_SECONDS=$SECS: a whole number >= 1"
[[ $REPS =~ ^[0-9]+$ && $REPS -ge 1 ]] || die "BENCH_REPS=$REPS: a whole number >= 1"
for w in $WORKLOADS; do
    case $w in sqlite|fio) ;; *) die "BENCH_WORKLOADS: unknown $w (sqlite, fio)";; esac
done
[ "$(id -u)" = 0 ] || die "needs root (loop mounts)"
for c in nbdkit nbdfuse mkfs.ext4 fusermount fio; do
    command -v $c >/dev/null || die "$c not found"
done
$PY -c 'import sqlite3' 2>/dev/null || die "$PY has no sqlite3 module"
for d in "$builddir" $basedir; do
    for f in lb/lb lbd/lbd tests/lw-mirror .libs/nbdkit-livewatch-filter.so; do
        [ -e "$d/$f" ] || die "$d/$f not found: build first (make && make check)"
    done
done
CONFIGS="A B"; [ -n "$basedir" ] && CONFIGS="A B C"

RUN=$(mktemp -d "$DATA_DIR/syncbench.XXXXXX") || die "mktemp in $DATA_DIR failed"
SRV=$RUN/srv
if [ -n "${BENCH_SRV_DIR:-}" ]; then
    SRV=$(mktemp -d "$BENCH_SRV_DIR/syncsrv.XXXXXX") || die "mktemp in $BENCH_SRV_DIR failed"
fi
declare -A PID=()
unmount_run () {
    local i
    for i in 1 2 3 4 5; do
        mountpoint -q "$RUN/mnt" || break
        umount "$RUN/mnt" 2>/dev/null || sleep 1
    done
    mountpoint -q "$RUN/fuse" && { fusermount -u "$RUN/fuse" || umount -l "$RUN/fuse"; }
}
stop_all () {
    local n
    unmount_run
    for n in "${!PID[@]}"; do kill "${PID[$n]}" 2>/dev/null; done
    for n in "${!PID[@]}"; do wait "${PID[$n]}" 2>/dev/null; done
    PID=()
}
cleanup () {
    stop_all
    if [ -n "${BENCH_KEEP:-}" ]; then echo "sync-bench: kept $RUN $SRV" >&2
    else rm -rf "$RUN" "$SRV"; fi
}
trap cleanup EXIT
trap 'echo "sync-bench: interrupted" >&2; exit 130' INT TERM HUP

. "$script_dir/bench-lib.sh"     # wait_for, ...
stat_of () { "$1/tests/lw-mirror" --stat --dir="$RUN/ch" 1 | sed -n "s/^$2=//p"; }
state_of () { sed -n "s/^$1=//p" "$SRV/c/disk.img.state" 2>/dev/null; }
converged () {
    [ "$(stat_of "$1" converged)" = 1 ] && [ "$(state_of phase)" = live ] \
        && [ "$(state_of consistent)" = 1 ]
}
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$SRV/c" "$RUN/fuse" "$RUN/mnt"
head -c 64 /dev/urandom >"$RUN/key"; chmod 600 "$RUN/key"
cp "$RUN/key" "$SRV/c/key"
echo "client file=c/disk.img key=c/key listen=127.0.0.1/$port type=simple" >"$SRV/lbd.conf"

# one WORKLOAD CONFIG: one run; prints "RATE LIVE% DEGRADES LOAD
# COMMITS/S SYNCS/COMMIT" (lbd's commits).
one () {
    local w=$1 cfg=$2 d=$builddir rate live=- deg mark commits=
    [ "$cfg" = C ] && d=$basedir
    : >"$RUN/lbd.log"
    rm -rf "$RUN/ch" "$RUN/nbd.sock" "$RUN/disk" "$SRV/c/disk.img" "$SRV/c/disk.img.state" "$RUN/stop"
    mkdir -p "$RUN/ch"
    truncate -s 256M "$RUN/disk"
    nbdkit -f -U "$RUN/nbd.sock" --filter="$d/.libs/nbdkit-livewatch-filter.so" \
        file "$RUN/disk" livewatch-unit=1 livewatch-dir="$RUN/ch" 2>>"$RUN/nbdkit.log" &
    PID[nbdkit]=$!
    wait_for 20 "$d/tests/lw-mirror" --stat --dir="$RUN/ch" 1 || die "nbdkit did not start"
    if [ "$cfg" != A ]; then
        rm -f "$RUN/lbd.ctl"
        "$d/lbd/lbd" -v --control="$RUN/lbd.ctl" "$SRV/lbd.conf" 2>>"$RUN/lbd.log" &
        PID[lbd]=$!
        wait_for 10 test -S "$RUN/lbd.ctl" || die "lbd did not start"
        "$d/lb/lb" ${BENCH_LB_OPTS:-} --dir="$RUN/ch" --retry=1 --name=c 1 "$RUN/disk" 127.0.0.1 "$port" \
            "$RUN/key" 2>>"$RUN/lb.log" &
        PID[lb]=$!
    fi
    nbdfuse "$RUN/fuse" --unix "$RUN/nbd.sock" 2>>"$RUN/nbdfuse.log" &
    PID[nbdfuse]=$!
    wait_for 20 test -e "$RUN/fuse/nbd" || die "nbdfuse did not start"
    mkfs.ext4 -q "$RUN/fuse/nbd" || die "mkfs.ext4 failed"
    mount -o loop "$RUN/fuse/nbd" "$RUN/mnt" || die "mount failed"
    sync -f "$RUN/mnt"
    if [ "$cfg" != A ]; then
        wait_for 120 converged "$d" || die "$cfg: lb did not converge before the writer"
        $PY -c '
import os, sys, time
state, stop = sys.argv[1], sys.argv[2]
live = n = 0
while not os.path.exists(stop):
    try:
        s = open(state).read()
    except OSError:
        s = ""
    n += 1
    live += "phase=live" in s and "consistent=1" in s
    time.sleep(0.1)
print("%.1f" % (100.0 * live / max(n, 1)))' "$SRV/c/disk.img.state" "$RUN/stop" >"$RUN/live" &
        PID[sampler]=$!
    fi
    deg=$(stat_of "$d" degrades)
    mark=$(wc -l <"$RUN/lbd.log")
    case $w in
    sqlite)
        n=$($TXN write "$RUN/mnt/db" "$RUN/progress" "$SECS")
        rate=$(awk -v n="$n" -v s="$SECS" 'BEGIN {printf "%.1f", n / s}') ;;
    fio)
        rate=$(fio --name=f --filename="$RUN/mnt/fio" --size=64M --rw=randwrite \
                   --bs=4k --fsync=1 --ioengine=psync --runtime="$SECS" --time_based \
                   --output-format=json 2>/dev/null |
               $PY -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["jobs"][0]["write"]["iops"])') ;;
    esac
    deg=$(( $(stat_of "$d" degrades) - deg ))
    if [ "$cfg" != A ]; then
        touch "$RUN/stop"; wait "${PID[sampler]}"; unset "PID[sampler]"
        live=$(cat "$RUN/live")
        # lbd -v logs each commit: "durable up to", with "N SYNCs in one
        # commit" when a group had more than one.
        commits=$(tail -n +$((mark + 1)) "$RUN/lbd.log" | awk -v s="$SECS" '
            /durable up to seq/ {c++; n += match($0, /[0-9]+ SYNCs in one/) ? substr($0, RSTART) + 0 : 1}
            END {printf "%.0f %.1f", c / s, c ? n / c : 0}')
    fi
    echo "$rate $live $deg $(cut -d' ' -f1 /proc/loadavg) ${commits:-- -}"
    stop_all
}

range () { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo ".." hi}'; }

echo "sync-bench: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "build $builddir ($(git -C "$builddir" rev-parse --short HEAD 2>/dev/null || echo ?))"
[ -n "$basedir" ] && echo "base  $basedir"
echo "disks in $DATA_DIR, lbd's image in ${SRV%/*}; $SECS s per run, $REPS reps, configs $CONFIGS"
declare -A R=()
for rep in $(seq 1 "$REPS"); do
    cfgs=$CONFIGS
    # Rotate the order rep by rep.
    for i in $(seq 2 "$rep"); do cfgs="${cfgs#* } ${cfgs%% *}"; done
    for w in $WORKLOADS; do
        for cfg in $cfgs; do
            # Not in a subshell: what it starts is stopped at exit.
            one "$w" "$cfg" >"$RUN/out"; out=$(cat "$RUN/out")
            set -- $out
            echo "rep $rep $w $cfg: rate $1/s live $2% degrades $3 load $4 lbd commits $5/s, $6 SYNCs each"
            R[$w.$cfg]+="$out"$'\n'
        done
    done
done
echo
# Ratios: of the medians, and the median of the ratios within each rep
# (a rep's runs are close in time, so they share the machine's load).
echo "| workload | config | rate/s median (range) | ratio of medians to A | paired ratio to A, median (range) | live % median (range) | degrades (sum) | lbd commits/s | SYNCs per commit |"
echo "|---|---|---|---|---|---|---|---|---|"
for w in $WORKLOADS; do
    a=$(printf '%s' "${R[$w.A]}" | cut -d' ' -f1 | median)
    for cfg in $CONFIGS; do
        col () { printf '%s' "${R[$w.$cfg]}" | cut -d' ' -f"$1"; }
        m=$(col 1 | median)
        ratio=$(awk -v x="$m" -v y="$a" 'BEGIN {printf "%.2f", x / y}')
        paired=$(paste -d' ' <(col 1) <(printf '%s' "${R[$w.A]}" | cut -d' ' -f1) |
                 awk '{printf "%.3f\n", $1 / $2}')
        if [ "$cfg" = A ]; then lv="-"; else lv="$(col 2 | median) ($(col 2 | range))"; fi
        echo "| $w | $cfg | $m ($(col 1 | range)) | $ratio | $(median <<<"$paired") ($(range <<<"$paired")) | $lv | $(col 3 | awk '{s += $1} END {print s}') | $(col 5 | median) | $(col 6 | median) |"
    done
done
