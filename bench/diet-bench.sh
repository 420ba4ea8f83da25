#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# diet-bench.sh: issue 11's benchmarks of the wire diet, #5 and #7.
#
#   bench/diet-bench.sh [BUILDDIR]
#
# BUILDDIR holds lb/lb, lbd/lbd, .libs/nbdkit-livewatch-filter.so and
# tests/lw-mirror (default: the repository this script lives in).  Not
# part of "make check".  Everything runs on loopback, in a folder in
# /dev/shm; wire bytes are counted outside the programs, by
# tests/relay.py --count in front of lbd and of rsync's daemon alike.
#
#  catchup (#5)  a BENCH_SIZE device of random data, mirrored; lb
#           stopped; 1 % of the device rewritten in random 4 KiB writes
#           (with livewatch-queue=BENCH_QUEUE, 1M by default, the change
#           overflows the ring into the dirty bitmap: the usual case
#           after a long absence); then, alternating which goes first:
#             lb      lb started again: it continues and catches up;
#                     time from its start to converged
#             rsync   rsync --inplace --no-whole-file -I of the device to
#                     an rsync daemon on loopback holding the device as it
#                     was before the change (-I: no skipping by size and
#                     time, which can match within a second)
#           Figures: wire bytes (both ways) / dirty bytes, and rsync's
#           time / lb's.  Targets: <= 1.2 x dirty bytes, >= 5 x faster
#           than rsync.
#  ext4 (#7)  ext4 on the device (nbdfuse + loop); lb live; cp -a of
#           BENCH_TREES (/usr/share/doc /usr/include) into it, sync,
#           unmount; payload = the bytes the filter queued (the ring is
#           256M, so nothing degrades); wire bytes lb sent / payload, for
#           --compress=off, 1, 3, auto on an unlimited relay, and auto
#           on a relay of BENCH_SLOW bytes/s (a slow link).  Between runs
#           the copy is removed and fstrim run (not counted).  Target:
#           <= 0.5 x payload.
#
# Environment (defaults in brackets):
#   BENCH_REPS   reps per measurement [3]
#   BENCH_SIZE   device size for catchup [1G]
#   BENCH_QUEUE  livewatch-queue for catchup [1M]
#   BENCH_PARTS  parts to run [catchup ext4]
#   BENCH_TREES  folders copied by ext4 [/usr/share/doc /usr/include]
#   BENCH_SLOW   the slow relay's rate, bytes/s [8000000]
#   BENCH_KEEP   non-empty: keep the run folder

set -u
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

script_dir=$(cd "$(dirname "$0")" && pwd)
builddir=$(cd "${1:-$script_dir/..}" 2>/dev/null && pwd) || {
    echo "diet-bench: no such build folder: ${1:-$script_dir/..}" >&2; exit 2; }
FILTER=$builddir/.libs/nbdkit-livewatch-filter.so
MIRROR=$builddir/tests/lw-mirror
LB=$builddir/lb/lb
LBD=$builddir/lbd/lbd
RELAY=$script_dir/../tests/relay.py
PY=/usr/bin/python3
REPS=${BENCH_REPS:-3}
SIZE=${BENCH_SIZE:-1G}
QUEUE=${BENCH_QUEUE:-1M}
PARTS=${BENCH_PARTS:-catchup ext4}
TREES=${BENCH_TREES:-/usr/share/doc /usr/include}
SLOW=${BENCH_SLOW:-8000000}

die () { echo "diet-bench: $*" >&2; exit 1; }
say () { echo "$*"; }
for f in "$FILTER" "$MIRROR" "$LB" "$LBD"; do [ -x "$f" ] || [ -f "$f" ] || die "missing $f"; done
for p in nbdkit nbdsh rsync; do command -v $p >/dev/null || die "needs $p"; done

RUN=$(mktemp -d /dev/shm/diet-bench.XXXXXX)
PIDS=()
cleanup () {
    [ -n "${MNT:-}" ] && { mountpoint -q "$MNT" && umount "$MNT"; mountpoint -q "$RUN/fuse" && fusermount -u "$RUN/fuse"; } 2>/dev/null
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "${BENCH_KEEP:-}" ] && echo "kept $RUN" || rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$script_dir/bench-lib.sh"     # free_port, wait_for, now, median
spread () { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
stat_of () { "$MIRROR" --stat --dir="$1" 1 | sed -n "s/^$2=//p"; }
state_of () { sed -n "s/^$2=//p" "$1.state" 2>/dev/null; }
converged () { [ "$(stat_of "$1" converged)" = 1 ] && [ "$(state_of "$2" phase)" = live ]; }
# relay NAME TARGET_PORT [options]: a counting relay; its port in $RP.
relay () {
    local name=$1 tport=$2; shift 2
    RP=$(free_port)
    $PY "$RELAY" "$@" --count="$RUN/$name.count" "$RP" 127.0.0.1 "$tport" \
        "$RUN/$name.rpid" </dev/null >/dev/null 2>>"$RUN/$name.rlog" &
    PIDS+=($!)
    wait_for 10 test -s "$RUN/$name.count" || die "relay $name did not start"
}
# wire NAME: bytes both ways so far; up NAME: those toward the server.
wire () { awk '{ print $1 + $2 }' "$RUN/$1.count"; }
up () { cut -d' ' -f1 "$RUN/$1.count"; }
idle () { [ "$(cut -d' ' -f3 "$RUN/$1.count")" = 0 ]; }
# settled NAME: the count once it stops moving for half a second.
settled () {
    local a b; b=$(up "$1")
    for _ in $(seq 1 60); do a=$b; sleep 0.5; b=$(up "$1"); [ "$a" = "$b" ] && break; done
}
start_lb () {   # start_lb DIR DEVICE PORT [options]
    local dir=$1 dev=$2 port=$3; shift 3
    "$LB" --dir="$dir" --retry=1 "$@" 1 "$dev" 127.0.0.1 "$port" "$RUN/key" 2>>"$dir/lb.log" &
    LB_PID=$!; PIDS+=($LB_PID)
}
stop_lb () { kill "$LB_PID" 2>/dev/null; wait "$LB_PID" 2>/dev/null; }
start_nbdkit () {   # start_nbdkit DIR DEVICE [filter options]
    local dir=$1 dev=$2; shift 2
    nbdkit -U "$dir/nbd.sock" -P "$dir/nbd.pid" -f --filter="$FILTER" file "$dev" \
        livewatch-unit=1 livewatch-dir="$dir" "$@" 2>>"$dir/nbdkit.log" &
    PIDS+=($!)
    wait_for 20 "$MIRROR" --stat --dir="$dir" 1 || die "nbdkit in $dir did not start"
}

head -c 64 /dev/urandom >"$RUN/key"; chmod 600 "$RUN/key"
mkdir -p "$RUN/srv/c" "$RUN/srv/e" "$RUN/rsyncd"
cp "$RUN/key" "$RUN/srv/c/key"; cp "$RUN/key" "$RUN/srv/e/key"
lport=$(free_port); eport=$(free_port)
cat >"$RUN/srv/lbd.conf" <<CONF
client file=c/disk.img key=c/key name=c listen=127.0.0.1/$lport
client file=e/disk.img key=e/key name=e listen=127.0.0.1/$eport
CONF
"$LBD" --control="$RUN/lbd.ctl" "$RUN/srv/lbd.conf" 2>>"$RUN/lbd.log" &
PIDS+=($!)
wait_for 20 test -S "$RUN/lbd.ctl" || die "lbd did not start"

say "diet-bench: $(git -C "$script_dir" describe --always --dirty 2>/dev/null), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
say "commands: lb --dir=D --retry=1 [opts] 1 DEV 127.0.0.1 PORT KEY (through tests/relay.py --count)"

# --- #5 catch-up against rsync --------------------------------------------
if [[ " $PARTS " == *" catchup "* ]]; then
    C=$RUN/c; mkdir -p "$C"
    DEV=$C/dev IMG=$RUN/srv/c/disk.img
    size=$(numfmt --from=iec "$SIZE")
    head -c "$size" /dev/urandom >"$DEV"
    start_nbdkit "$C" "$DEV" livewatch-queue="$QUEUE"
    relay lbc "$lport"; lbrelay=$RP
    # rsync's daemon, holding the device as it was.
    rport=$(free_port)
    cat >"$RUN/rsyncd.conf" <<CONF
pid file = $RUN/rsyncd.pid
use chroot = no
uid = $(id -u)
gid = $(id -g)
[m]
path = $RUN/rsyncd
read only = no
CONF
    rsync --daemon --no-detach --address=127.0.0.1 --port="$rport" \
        --config="$RUN/rsyncd.conf" 2>>"$RUN/rsyncd.log" &
    PIDS+=($!)
    relay rs "$rport"; rsrelay=$RP
    start_lb "$C" "$DEV" "$lbrelay"
    wait_for 300 converged "$C" "$IMG" || die "catchup: first contact did not converge"
    stop_lb
    cp "$DEV" "$RUN/rsyncd/dev"
    say ""
    say "== #5 catch-up after 1 % random 4 KiB writes to $SIZE (livewatch-queue=$QUEUE), lb away meanwhile"
    say "rsync: rsync --inplace --no-whole-file -I DEV rsync://127.0.0.1:PORT/m/dev (daemon on loopback, same change)"
    printf '%-4s %-6s %10s %12s %12s %8s %6s\n' rep tool dirty wire_bytes up_bytes x_dirty secs
    : >"$RUN/c.tsv"
    nw=$(( size / 4096 / 100 ))
    for rep in $(seq 1 "$REPS"); do
        dirty=$(nbdsh -u "nbd+unix:///?socket=$C/nbd.sock" -c "
import os, random
r = random.Random($rep); seen = set()
for i in range($nw):
    b = r.randrange($size // 4096); seen.add(b)
    h.pwrite(os.urandom(4096), b * 4096)
h.flush()
print(len(seen) * 4096)")
        order="lb rsync"; [ $((rep % 2)) = 0 ] && order="rsync lb"
        for tool in $order; do
            if [ $tool = lb ]; then
                w0=$(wire lbc) u0=$(up lbc) t0=$(now)
                start_lb "$C" "$DEV" "$lbrelay"
                wait_for 300 converged "$C" "$IMG" || die "catchup: lb did not converge"
                t1=$(now)
                stop_lb; wait_for 10 idle lbc
                w1=$(wire lbc) u1=$(up lbc)
                cmp -s "$DEV" "$IMG" || die "catchup: the image differs"
            else
                w0=$(wire rs) u0=$(up rs) t0=$(now)
                rsync --inplace --no-whole-file -I "$DEV" "rsync://127.0.0.1:$rsrelay/m/dev" \
                    2>>"$RUN/rsync.log" || die "rsync failed"
                t1=$(now)
                wait_for 10 idle rs
                w1=$(wire rs) u1=$(up rs)
                cmp -s "$DEV" "$RUN/rsyncd/dev" || die "catchup: rsync's copy differs"
            fi
            secs=$(echo "$t1 - $t0" | bc)
            x=$(echo "scale=3; ($w1 - $w0) / $dirty" | bc)
            printf '%-4s %-6s %10s %12s %12s %8s %6.2f\n' "$rep" $tool "$dirty" \
                $((w1 - w0)) $((u1 - u0)) "$x" "$secs"
            printf '%s\t%s\t%s\t%s\n' $tool "$x" "$secs" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RUN/c.tsv"
        done
    done
    for tool in lb rsync; do
        say "$tool: wire/dirty median $(awk -v t=$tool '$1 == t { print $2 }' "$RUN/c.tsv" | median) (spread $(awk -v t=$tool '$1 == t { print $2 }' "$RUN/c.tsv" | spread)), seconds median $(awk -v t=$tool '$1 == t { print $3 }' "$RUN/c.tsv" | median) (spread $(awk -v t=$tool '$1 == t { print $3 }' "$RUN/c.tsv" | spread))"
    done
    lbs=$(awk '$1 == "lb" { print $3 }' "$RUN/c.tsv" | median)
    rss=$(awk '$1 == "rsync" { print $3 }' "$RUN/c.tsv" | median)
    say "rsync time / lb time (medians): $(echo "scale=2; $rss / $lbs" | bc); load during: $(cut -f4 "$RUN/c.tsv" | spread)"
    kill "$(cat "$C/nbd.pid")" 2>/dev/null
fi

# --- #7 ext4 + text trees: wire bytes against payload ------------------------
if [[ " $PARTS " == *" ext4 "* ]]; then
    for p in nbdfuse mkfs.ext4 fstrim fusermount; do command -v $p >/dev/null || die "ext4 needs $p"; done
    [ "$(id -u)" = 0 ] || die "ext4 needs root (loop mount)"
    E=$RUN/e; mkdir -p "$E" "$RUN/fuse" "$RUN/mnt"; MNT=$RUN/mnt
    DEV=$E/dev IMG=$RUN/srv/e/disk.img
    truncate -s 2G "$DEV"
    start_nbdkit "$E" "$DEV" livewatch-queue=256M
    nbdfuse "$RUN/fuse" --unix "$E/nbd.sock" 2>>"$RUN/nbdfuse.log" &
    PIDS+=($!)
    wait_for 20 test -e "$RUN/fuse/nbd" || die "nbdfuse did not start"
    mkfs.ext4 -q -E nodiscard "$RUN/fuse/nbd" || die "mkfs failed"
    mount -o loop "$RUN/fuse/nbd" "$MNT" || die "mount failed"
    relay ef "$eport"; fast=$RP
    relay es "$eport" --rate="$SLOW" --rcvbuf=131072; slow=$RP
    payload_of () { du -sb $TREES 2>/dev/null | awk '{ s += $1 } END { print s }'; }
    say ""
    say "== #7 ext4 + cp -a $TREES ($(payload_of) bytes of files), wire bytes lb sent / bytes the filter queued"
    printf '%-4s %-14s %12s %12s %7s %7s\n' rep variant queued wire x secs
    : >"$RUN/e.tsv"
    for rep in $(seq 1 "$REPS"); do
        variants="off:ef:--compress=off 1:ef:--compress=1 3:ef:--compress=3 auto:ef: auto-slow:es:"
        [ $((rep % 2)) = 0 ] && variants=$(echo $variants | tr ' ' '\n' | tac | tr '\n' ' ')
        for v in $variants; do
            name=${v%%:*} rest=${v#*:} rl=${rest%%:*} opt=${rest#*:}
            port=$fast; [ "$rl" = es ] && port=$slow
            start_lb "$E" "$DEV" "$port" $opt -v
            wait_for 300 converged "$E" "$IMG" || die "ext4: lb did not converge ($name)"
            settled "$rl"
            q0=$(stat_of "$E" bytes_queued) u0=$(up "$rl") t0=$(now)
            d0=$(stat_of "$E" degrades)
            cp -a $TREES "$MNT/" && sync -f "$MNT" || die "cp failed"
            wait_for 600 converged "$E" "$IMG" || die "ext4: no convergence after the copy ($name)"
            t1=$(now); settled "$rl"
            q1=$(stat_of "$E" bytes_queued) u1=$(up "$rl")
            [ "$(stat_of "$E" degrades)" = "$d0" ] ||
                say "note: the filter degraded during the copy ($name): queued bytes undercount"
            x=$(echo "scale=3; ($u1 - $u0) / ($q1 - $q0)" | bc)
            secs=$(echo "$t1 - $t0" | bc)
            printf '%-4s %-14s %12s %12s %7s %7.2f\n' "$rep" "$name" $((q1 - q0)) $((u1 - u0)) "$x" "$secs"
            printf '%s\t%s\t%s\t%s\n' "$name" "$x" "$secs" "$(cut -d' ' -f1 /proc/loadavg)" >>"$RUN/e.tsv"
            grep "compression: link about" "$E/lb.log" | tail -1 | sed 's/^/    last level choice: /'
            stop_lb
            rm -rf "${MNT:?}"/*; sync -f "$MNT"; fstrim "$MNT" >/dev/null 2>&1
            start_lb "$E" "$DEV" "$fast"; wait_for 300 converged "$E" "$IMG"; stop_lb
            : >"$E/lb.log"
        done
    done
    for name in off 1 3 auto auto-slow; do
        say "$name: wire/payload median $(awk -v t=$name '$1 == t { print $2 }' "$RUN/e.tsv" | median) (spread $(awk -v t=$name '$1 == t { print $2 }' "$RUN/e.tsv" | spread)), seconds median $(awk -v t=$name '$1 == t { print $3 }' "$RUN/e.tsv" | median)"
    done
    say "load during: $(cut -f4 "$RUN/e.tsv" | spread)"
    umount "$MNT"; wait_for 10 fusermount -u "$RUN/fuse"; MNT=
    start_lb "$E" "$DEV" "$fast"; wait_for 300 converged "$E" "$IMG"; stop_lb
    cmp -s "$DEV" "$IMG" && say "ext4: the image equals the device" || say "ext4: THE IMAGE DIFFERS"
fi
