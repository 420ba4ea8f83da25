#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# state-bench.sh: what livewatch-state= (the activity log) costs on the
# write path.
#
#   bench/state-bench.sh [BUILDDIR]
#
# Every configuration serves the same file-backed disk through the
# livewatch filter over a Unix socket; fio's nbd engine writes to it:
#   B   no consumer (degraded: writes set bitmap bits), no state file
#   BS  the same with livewatch-state= (the log on)
#   C   tests/lw-mirror draining into an image (normal mode), no state
#   CS  the same with livewatch-state=
# and, with BENCH_WINDOW=N, BSW / CSW: the log on with only N slots, so
# that the active window (N x 4 MiB) is far smaller than the disk and the
# regions move under the writes (activations and evictions all along, as
# on a disk much larger than livewatch-al-regions x livewatch-al-region).
# The disk, the image and the state file all sit in BENCH_DIR (default
# /tmp, here ext4 on the machine's one disk: every fdatasync of the state
# file is a real one).  Workloads: 4k random writes at QD32, 1M sequential
# writes at QD8.  Runs are interleaved (B BS C CS B BS ...) so the
# machine's noise spreads over all; each run gets a fresh nbdkit and a
# fresh state file, then a warm-up of BENCH_WARM seconds of the same
# workload, not measured, in which the regions the workload touches are
# activated (its cost is reported apart: the writes that waited for the
# journal, and how long): the measured run is the steady state.
# Reported: medians, min-max, the paired ratio (log on / log off within
# one rep), nbdkit's CPU time per write (user + system: less disturbed by
# a loaded machine than throughput), and the state file's fdatasyncs per
# second.
#
# Environment: BENCH_SECONDS [10], BENCH_WARM [3], BENCH_REPS [5],
# BENCH_SIZE [1G], BENCH_DIR [/tmp], BENCH_CONFIGS [B BS C CS],
# BENCH_WORKLOADS [rand4k seq1m], BENCH_WINDOW [0: off; e.g. 64 adds BSW
# and CSW].

set -u
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

script_dir=$(cd "$(dirname "$0")" && pwd)
builddir=$(cd "${1:-$script_dir/..}" && pwd) || exit 2
FILTER=$builddir/.libs/nbdkit-livewatch-filter.so
MIRROR=$builddir/tests/lw-mirror
SECS=${BENCH_SECONDS:-10}
WARM=${BENCH_WARM:-3}
REPS=${BENCH_REPS:-5}
SIZE=${BENCH_SIZE:-1G}
DIR=${BENCH_DIR:-/tmp}
WINDOW=${BENCH_WINDOW:-0}
CONFIGS=${BENCH_CONFIGS:-B BS C CS}
[ "$WINDOW" -gt 0 ] && CONFIGS="$CONFIGS BSW CSW"
WORKLOADS=${BENCH_WORKLOADS:-rand4k seq1m}

die () { echo "state-bench: $*" >&2; exit 1; }
[ -f "$FILTER" ] && [ -x "$MIRROR" ] || die "build first (make && make tests/lw-mirror)"
command -v fio >/dev/null && command -v nbdkit >/dev/null || die "needs fio and nbdkit"

RUN=$(mktemp -d /dev/shm/lwsbench.XXXXXX)
DATA=$(mktemp -d "$DIR/lwsbench.XXXXXX")
NBDKIT_PID= MIRROR_PID=
cleanup () {
    local p
    for p in $MIRROR_PID $NBDKIT_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$RUN" "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
SOCK=$RUN/nbd.sock DISK=$DATA/disk IMG=$DATA/img STATE=$DATA/state

. "$script_dir/bench-lib.sh"     # wait_for, cpu_ticks
stat_of () { "$MIRROR" --stat --dir="$RUN" 1 2>/dev/null | sed -n "s/^$1=//p"; }
converged () { [ "$(stat_of converged)" = 1 ]; }

start () {                      # start CONFIG
    local extra=()
    case $1 in
        *S) extra=(livewatch-state="$STATE") ;;
        *SW) extra=(livewatch-state="$STATE" livewatch-al-regions="$WINDOW") ;;
    esac
    rm -f "$SOCK" "$RUN/pid" "$STATE"
    nbdkit -f -U "$SOCK" -P "$RUN/pid" --exit-with-parent --filter="$FILTER" \
        file "$DISK" livewatch-unit=1 livewatch-dir="$RUN" "${extra[@]}" \
        2>>"$RUN/nbdkit.log" &
    NBDKIT_PID=$!
    wait_for 20 "$MIRROR" --stat --dir="$RUN" 1 || die "nbdkit ($1) did not start"
    case $1 in
        C*) rm -f "$IMG.state"
            "$MIRROR" --dir="$RUN" --state="$IMG.state" --quiet 1 "$DISK" "$IMG" \
                2>>"$RUN/mirror.log" &
            MIRROR_PID=$!
            wait_for 300 converged || die "the mirror did not converge" ;;
    esac
}
stop () {
    [ -n "$MIRROR_PID" ] && { kill "$MIRROR_PID"; wait "$MIRROR_PID" 2>/dev/null; MIRROR_PID=; }
    kill "$NBDKIT_PID" 2>/dev/null; wait "$NBDKIT_PID" 2>/dev/null; NBDKIT_PID=
}
run_fio () {                    # run_fio WORKLOAD SECONDS: prints "IOPS IOS"
    local w=(--rw=randwrite --bs=4k --iodepth=32 --norandommap --randrepeat=0)
    [ "$1" = seq1m ] && w=(--rw=write --bs=1M --iodepth=8)
    fio --name="$1" --ioengine=nbd --uri="nbd+unix:///?socket=$SOCK" "${w[@]}" \
        --numjobs=1 --time_based --runtime="$2" --output-format=json 2>>"$RUN/fio.log" |
        /usr/bin/python3 -c 'import json,sys; t=sys.stdin.read(); w=json.loads(t[t.index("{"):])["jobs"][0]["write"]; print("%.0f %d" % (w["iops"], w["total_ios"]))'
}

echo "state-bench: $(nproc) CPUs, $(nbdkit --version), $(fio --version); disk $SIZE in $DIR ($(df -PT "$DIR" | awk 'NR==2 {print $2}'), the state file beside it)"
echo "state-bench: ${SECS}s runs, $REPS reps, configs: $CONFIGS; load at start $(cut -d' ' -f1-3 /proc/loadavg)"
fallocate -l "$SIZE" "$DISK" 2>/dev/null || truncate -s "$SIZE" "$DISK"
dd if=/dev/zero of="$DISK" bs=1M count=$(( $(stat -c %s "$DISK") >> 20 )) conv=notrunc status=none
RES=$RUN/res.tsv
: >"$RES"
for rep in $(seq 1 "$REPS"); do
    for wl in $WORKLOADS; do
        for cfg in $CONFIGS; do
            start "$cfg"
            [ "$WARM" -gt 0 ] && run_fio "$wl" "$WARM" >/dev/null
            wa=$(stat_of al_waits) wu=$(stat_of al_wait_us) ws=$(stat_of state_syncs)
            n0=$(cpu_ticks "$NBDKIT_PID")
            read -r iops ios < <(run_fio "$wl" "$SECS")
            n1=$(cpu_ticks "$NBDKIT_PID")
            s1=$(stat_of state_syncs) deg=$(stat_of degrades)
            aw=$(( $(stat_of al_waits) - wa )) awu=$(( $(stat_of al_wait_us) - wu ))
            stop
            syncs=$(( (s1 - ws) / SECS ))
            us=$(awk -v t=$((n1 - n0)) -v n="$ios" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", n ? t * 1e6 / hz / n : 0}')
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$wl" "$cfg" "$iops" "$syncs" "$us" >>"$RES"
            printf 'rep %d %-6s %-3s %8d IOPS  %5s us/IO  state file %4d fdatasync/s, %s writes waited %s ms  (warm-up: %s waited %s ms, %s fdatasyncs)  degrades %s  load %s\n' \
                "$rep" "$wl" "$cfg" "$iops" "$us" "$syncs" "$aw" "$(( awu / 1000 ))" "$wa" "$(( wu / 1000 ))" "$ws" "$deg" "$(cut -d' ' -f1 /proc/loadavg)"
        done
    done
done

med () { awk -F'\t' -v w="$1" -v k="$2" -v c="$3" '$2==w && $3==k {print $c}' "$RES" | sort -g |
    awk '{v[NR]=$1} END {if (NR) print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
rng () { awk -F'\t' -v w="$1" -v k="$2" '$2==w && $3==k {print $4}' "$RES" | sort -g |
    awk 'NR==1 {lo=$1} {hi=$1} END {printf "%d-%d", lo, hi}'; }
paired () {                     # paired WORKLOAD ON OFF [COL]: median of ON/OFF within a rep
    awk -F'\t' -v w="$1" -v on="$2" -v off="$3" -v c="${4:-4}" '$2==w && $3==off {b[$1]=$c} $2==w && $3==on {x[$1]=$c}
        END {for (r in x) if (b[r] > 0) print x[r]/b[r]}' "$RES" | sort -g |
        awk '{v[NR]=$1} END {if (!NR) {print "-"; exit} printf "%.3f [%.3f-%.3f]", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2, v[1], v[NR]}'
}
echo
echo "| workload | config | IOPS (median) | min-max | nbdkit CPU us/IO | state fdatasync/s |"
echo "|---|---|---:|---:|---:|---:|"
for wl in $WORKLOADS; do
    for cfg in $CONFIGS; do
        printf '| %s | %s | %.0f | %s | %s | %s |\n' "$wl" "$cfg" "$(med "$wl" "$cfg" 4)" "$(rng "$wl" "$cfg")" "$(med "$wl" "$cfg" 6)" "$(med "$wl" "$cfg" 5)"
    done
done
echo
for wl in $WORKLOADS; do
    echo "$wl IOPS: BS/B $(paired "$wl" BS B), CS/C $(paired "$wl" CS C)$( [ "$WINDOW" -gt 0 ] && echo ", BSW/B $(paired "$wl" BSW B), CSW/C $(paired "$wl" CSW C)")"
    echo "$wl CPU/IO: BS/B $(paired "$wl" BS B 6), CS/C $(paired "$wl" CS C 6)$( [ "$WINDOW" -gt 0 ] && echo ", BSW/B $(paired "$wl" BSW B 6), CSW/C $(paired "$wl" CSW C 6)")"
done
echo "(paired: median [min-max] over reps of the ratio within one rep)"
echo "state-bench: load at end $(cut -d' ' -f1-3 /proc/loadavg)"
