#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# filter-bench.sh: what the livewatch filter costs on the write path.
#
#   bench/filter-bench.sh [BUILDDIR]
#
# BUILDDIR holds .libs/nbdkit-livewatch-filter.so and tests/lw-mirror
# (default: the repository this script lives in; build lw-mirror with
# "make tests/lw-mirror" or "make check").  Not part of "make check".
#
# Three configurations serve the same file-backed disk over a Unix socket
# and fio's nbd engine writes to it:
#   A  bare "nbdkit file DISK"                           (the baseline)
#   B  with --filter=livewatch and no consumer attached  (degraded mode:
#      each write takes the shared lock and sets bitmap bits)
#   C  with --filter=livewatch and tests/lw-mirror draining into an image
#      on the same filesystem (normal mode: each write takes the exclusive
#      lock and is copied into the ring; a consumer slower than the writer
#      degrades and catches up, by design; degrade cycles are reported)
#   N  (optional control, not run by default) with nbdkit's own no-op
#      filter, --filter=nofilter: what any filter layer costs in nbdkit,
#      to tell it apart from livewatch's own work (B/N)
# Workloads: 4k random writes at iodepth 32, 1M sequential writes at
# iodepth 8, one fio job each.  Each (workload, configuration) is run
# BENCH_REPS times, interleaved A B C A B C ... so machine noise spreads
# over all configurations; each run gets a fresh nbdkit (and, for C, a
# mirror that has converged before fio starts).  The medians are reported.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS  measured seconds per run [10]
#   BENCH_RAMP     fio ramp_time seconds, not measured [0]; keep 0 if you
#                  want the CPU figures, which cover the whole run
#   BENCH_REPS     runs per (workload, configuration) [3]
#   BENCH_SIZE     disk size, as for truncate/dd (M or G suffix) [1G]
#   BENCH_DIR      folder for the disk and C's mirror image [/dev/shm]
#                  (tmpfs: no device or writeback noise, so the filter's
#                  CPU cost shows at its largest).  The channel and the
#                  socket always live in /dev/shm, as in production.
#   BENCH_CONFIGS  configurations to run, in this order [A B C]; e.g.
#                  "A N B C" adds the nofilter control
#   BENCH_WORKLOADS workloads to run [rand4k seq1m]
#   BENCH_THREADS  nbdkit --threads [nbdkit's default, 16]
#   BENCH_LATENCY  e.g. 1ms: every configuration gets nbdkit's delay filter
#                  (delay-write=BENCH_LATENCY) next to the plugin, a disk
#                  with that write latency: shows whether the filter
#                  keeps the writes' parallelism (queue depth) [none]
#   BENCH_CONVERGE seconds to wait for C's mirror to converge [120]

set -u
export LC_ALL=C
# Debian's tools first (a pyenv python3 may shadow /usr/bin/python3).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

script_dir=$(cd "$(dirname "$0")" && pwd)
builddir=$(cd "${1:-$script_dir/..}" 2>/dev/null && pwd) || {
    echo "filter-bench: no such build folder: ${1:-$script_dir/..}" >&2
    exit 2
}
FILTER=$builddir/.libs/nbdkit-livewatch-filter.so
MIRROR=$builddir/tests/lw-mirror

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
RAMP=${BENCH_RAMP:-0}
REPS=${BENCH_REPS:-3}
SIZE=${BENCH_SIZE:-1G}
DISK_DIR=${BENCH_DIR:-/dev/shm}
CONFIGS=${BENCH_CONFIGS:-A B C}
WORKLOADS=${BENCH_WORKLOADS:-rand4k seq1m}
THREADS=${BENCH_THREADS:-}
LATENCY=${BENCH_LATENCY:-}
CONVERGE=${BENCH_CONVERGE:-120}

die () { echo "filter-bench: $*" >&2; exit 1; }
say () { echo "$*"; }

# --- prerequisites ------------------------------------------------------
for v in BENCH_SECONDS:$SECONDS_PER_RUN BENCH_RAMP:$RAMP BENCH_REPS:$REPS \
         BENCH_CONVERGE:$CONVERGE; do
    [[ ${v#*:} =~ ^[0-9]+$ ]] || die "${v%%:*}=${v#*:}: must be a whole number"
done
[ "$SECONDS_PER_RUN" -ge 1 ] && [ "$REPS" -ge 1 ] \
    || die "BENCH_SECONDS and BENCH_REPS must be at least 1"
[[ $SIZE =~ ^[0-9]+[MG]$ ]] || die "BENCH_SIZE=$SIZE: give e.g. 512M or 1G"
[ -z "$THREADS" ] || [[ $THREADS =~ ^[0-9]+$ ]] \
    || die "BENCH_THREADS=$THREADS: must be a number"
for c in $CONFIGS; do
    case $c in A|B|C|N) ;; *) die "BENCH_CONFIGS: unknown configuration $c (A, B, C or N)";; esac
done
for w in $WORKLOADS; do
    case $w in rand4k|seq1m) ;; *) die "BENCH_WORKLOADS: unknown workload $w (rand4k or seq1m)";; esac
done
command -v nbdkit >/dev/null || die "nbdkit not found (apt-get install nbdkit)"
command -v fio >/dev/null || die "fio not found (apt-get install fio)"
fio --enghelp=nbd >/dev/null 2>&1 \
    || die "this fio has no nbd engine (Debian's fio has it; needs libnbd)"
if [ -x /usr/bin/python3 ]; then JSON=python3
elif command -v jq >/dev/null; then JSON=jq
else die "need /usr/bin/python3 or jq to read fio's JSON output"
fi
need_filter=false need_mirror=false
for c in $CONFIGS; do
    case $c in B|C) need_filter=true;; esac
    [ "$c" = C ] && need_mirror=true
done
if $need_filter; then
    [ -f "$FILTER" ] || die "$FILTER not found: build first (autoreconf -fi && ./configure && make), or pass the build folder"
    nbdkit --filter="$FILTER" null --help >/dev/null 2>&1 \
        || die "nbdkit cannot load $FILTER (built for another nbdkit version? rebuild)"
fi
case " $CONFIGS " in *" N "*)
    nbdkit --filter=nofilter null --help >/dev/null 2>&1 \
        || die "configuration N needs nbdkit's nofilter filter (nbdkit package)";;
esac
if $need_mirror; then
    [ -x "$MIRROR" ] || die "$MIRROR not found: run \"make tests/lw-mirror\" (or make check) in $builddir"
fi
[ -d "$DISK_DIR" ] && [ -w "$DISK_DIR" ] || die "BENCH_DIR=$DISK_DIR is not a writable folder"
[ -d /dev/shm ] && [ -w /dev/shm ] || die "/dev/shm is not a writable folder"
size_mb=${SIZE%[MG]}; [ "${SIZE: -1}" = G ] && size_mb=$((size_mb * 1024))
copies=1; $need_mirror && copies=2
need_kb=$(( (size_mb * copies + 64) * 1024 ))
free_kb=$(df -Pk "$DISK_DIR" | awk 'NR==2 {print $4}')
[ "$free_kb" -ge "$need_kb" ] \
    || die "$DISK_DIR has $((free_kb/1024)) MiB free; the disk (and C's image) need $((need_kb/1024)) MiB"

# --- state and cleanup ----------------------------------------------------
RUN=$(mktemp -d /dev/shm/lwbench.XXXXXX) || die "mktemp in /dev/shm failed"
if [ "$(cd "$DISK_DIR" && pwd)" = /dev/shm ]; then DATA=$RUN
else DATA=$(mktemp -d "$DISK_DIR/lwbench.XXXXXX") || die "mktemp in $DISK_DIR failed"
fi
NBDKIT_PID= MIRROR_PID= FIO_PID=
cleanup () {
    local p
    for p in $FIO_PID $MIRROR_PID $NBDKIT_PID; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "$RUN" "$DATA"
}
trap cleanup EXIT
trap 'echo "filter-bench: interrupted" >&2; exit 130' INT TERM HUP

SOCK=$RUN/nbd.sock
DISK=$DATA/disk
IMG=$DATA/mirror.img

# wait_for, cpu_ticks, div ...
. "$script_dir/bench-lib.sh"
stat_of () { "$MIRROR" --stat --dir="$RUN" 1 2>/dev/null | sed -n "s/^$1=//p"; }
converged () { [ "$(stat_of converged)" = 1 ]; }

start_nbdkit () {             # start_nbdkit CONFIG
    local args=(-f -U "$SOCK" -P "$RUN/nbdkit.pid" --exit-with-parent)
    local inner=() lat=()
    [ -n "$THREADS" ] && args+=(--threads="$THREADS")
    # The delay filter goes last: next to the plugin, under livewatch.
    [ -n "$LATENCY" ] && inner=(--filter=delay) lat=(delay-write="$LATENCY")
    rm -f "$SOCK" "$RUN/nbdkit.pid"
    case $1 in
    A)  nbdkit "${args[@]}" "${inner[@]}" file "$DISK" "${lat[@]}" \
            2>>"$RUN/nbdkit.log" & ;;
    N)  nbdkit "${args[@]}" --filter=nofilter "${inner[@]}" file "$DISK" \
            "${lat[@]}" 2>>"$RUN/nbdkit.log" & ;;
    *)  nbdkit "${args[@]}" --filter="$FILTER" "${inner[@]}" file "$DISK" \
            "${lat[@]}" livewatch-unit=1 livewatch-dir="$RUN" \
            2>>"$RUN/nbdkit.log" & ;;
    esac
    NBDKIT_PID=$!
    wait_for 20 test -s "$RUN/nbdkit.pid" \
        || { tail -5 "$RUN/nbdkit.log" >&2; die "nbdkit ($1) did not start"; }
    if [ "$1" = B ] || [ "$1" = C ]; then
        wait_for 20 "$MIRROR" --stat --dir="$RUN" 1 \
            || die "the livewatch channel did not become ready"
    fi
}
stop_nbdkit () {
    [ -n "$NBDKIT_PID" ] || return 0
    kill "$NBDKIT_PID" 2>/dev/null; wait "$NBDKIT_PID" 2>/dev/null
    NBDKIT_PID=
}
start_mirror () {
    local limit=$(( CONVERGE + RAMP + SECONDS_PER_RUN + 120 ))
    rm -f "$IMG.state"
    "$MIRROR" --dir="$RUN" --state="$IMG.state" --max-seconds="$limit" \
        1 "$DISK" "$IMG" 2>>"$RUN/mirror.log" &
    MIRROR_PID=$!
    wait_for "$CONVERGE" converged || {
        "$MIRROR" --stat --dir="$RUN" 1 >&2; tail -5 "$RUN/mirror.log" >&2
        die "the mirror did not converge within ${CONVERGE}s before the run"
    }
}
stop_mirror () {
    [ -n "$MIRROR_PID" ] || return 0
    kill "$MIRROR_PID" 2>/dev/null; wait "$MIRROR_PID" 2>/dev/null
    MIRROR_PID=
}

# fio_json FILE: print "IOPS BW_BYTES TOTAL_IOS" of the write side.  fio
# may print a line ("fio: connected to NBD server") before its JSON: skip
# to the first "{".
fio_json () {
    if [ "$JSON" = python3 ]; then
        /usr/bin/python3 - "$1" <<'EOF'
import json, sys
t = open(sys.argv[1]).read()
w = json.loads(t[t.index("{"):])["jobs"][0]["write"]
print("%.0f %.0f %d" % (w["iops"], w["bw_bytes"], w["total_ios"]))
EOF
    else
        sed -n '/^{/,$p' "$1" |
            jq -r '.jobs[0].write | "\(.iops|floor) \(.bw_bytes) \(.total_ios)"'
    fi
}

# us_per_io TICKS IOS
us_per_io () { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", n ? t * 1e6 / hz / n : 0}'; }

# run_fio WORKLOAD OUTFILE
run_fio () {
    local w=(--rw=randwrite --bs=4k --iodepth=32 --norandommap --randrepeat=0)
    [ "$1" = seq1m ] && w=(--rw=write --bs=1M --iodepth=8)
    fio --name="$1" --ioengine=nbd --uri="nbd+unix:///?socket=$SOCK" \
        "${w[@]}" --numjobs=1 --time_based --ramp_time="$RAMP" \
        --runtime="$SECONDS_PER_RUN" --output-format=json \
        >"$2" 2>>"$RUN/fio.log" &
    FIO_PID=$!
    wait "$FIO_PID"; local rc=$?
    FIO_PID=
    [ $rc = 0 ] || { tail -5 "$RUN/fio.log" >&2; die "fio failed ($1)"; }
}

# --- the disk ---------------------------------------------------------------
# Written in full once, so that no run pays for first-touch allocation.
say "filter-bench: preparing a $SIZE disk in $DATA ..."
dd if=/dev/zero of="$DISK" bs=1M count="$size_mb" status=none \
    || die "cannot write $DISK"

declare -A wl_name=([rand4k]="4k randwrite, QD32" [seq1m]="1M seq write, QD8")
declare -A label=([A]="A bare" [N]="N nofilter (control)" [B]="B livewatch, no consumer" [C]="C livewatch + lw-mirror")
# One line per run: rep workload config iops bw_bytes degrades resumes
# catchup_s nbdkit_us_per_io mirror_us_per_io load1
RESULTS=$RUN/results.tsv
: >"$RESULTS"

say "filter-bench: builddir $builddir"
say "filter-bench: $(nproc) CPUs, kernel $(uname -r), $(nbdkit --version), $(fio --version)"
say "filter-bench: disk $SIZE in $DISK_DIR, ${SECONDS_PER_RUN}s runs (+${RAMP}s ramp), $REPS reps, configs: $CONFIGS, workloads: $WORKLOADS"
[ -n "$LATENCY" ] && say "filter-bench: every configuration writes through nbdkit's delay filter, delay-write=$LATENCY"
say "filter-bench: load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
say

for rep in $(seq 1 "$REPS"); do
    for wl in $WORKLOADS; do
        for cfg in $CONFIGS; do
            start_nbdkit "$cfg"
            d0=0 r0=0
            if [ "$cfg" = C ]; then
                start_mirror
                d0=$(stat_of degrades) r0=$(stat_of resumes)
                m0=$(cpu_ticks "$MIRROR_PID")
            fi
            load=$(cut -d' ' -f1 /proc/loadavg)
            out=$RUN/fio-$rep-$wl-$cfg.json
            n0=$(cpu_ticks "$NBDKIT_PID")
            run_fio "$wl" "$out"
            n1=$(cpu_ticks "$NBDKIT_PID")
            read -r iops bw ios < <(fio_json "$out")
            [ -n "${ios:-}" ] || die "cannot read fio's output $out"
            ncpu=$(us_per_io $((n1 - n0)) "$ios")
            deg=- res=- cu=- mcpu=- extra=
            case $cfg in
            B)  # Sanity: the filter was in the path, degraded, alone.
                [ "$(stat_of mode)" = degraded ] && [ "$(stat_of consumer)" = 0 ] \
                    || die "configuration B: filter not degraded or a consumer attached"
                [ "$(stat_of bits_set)" -gt 0 ] || die "configuration B: no bit set"
                extra="  mode=degraded writes=$(stat_of writes)" ;;
            C)  deg=$(( $(stat_of degrades) - d0 )) res=$(( $(stat_of resumes) - r0 ))
                recs=$(stat_of records)
                # How long the mirror needs to catch up once writes stop.
                t0=$(date +%s.%N)
                if wait_for "$CONVERGE" converged; then
                    cu=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
                else cu=">$CONVERGE"
                fi
                mcpu=$(us_per_io $(( $(cpu_ticks "$MIRROR_PID") - m0 )) "$ios")
                extra="  degrades=$deg resumes=$res records=$recs converged ${cu}s after; mirror ${mcpu} us/IO"
                stop_mirror ;;
            esac
            stop_nbdkit
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$wl" "$cfg" \
                "$iops" "$bw" "$deg" "$res" "$cu" "$ncpu" "$mcpu" "$load" >>"$RESULTS"
            printf 'rep %d %-6s %s %8d IOPS %7.1f MB/s  nbdkit %5s us/IO  load %s%s\n' \
                "$rep" "$wl" "$cfg" "$iops" "$(awk -v b="$bw" 'BEGIN {print b / 1e6}')" \
                "$ncpu" "$load" "$extra"
        done
    done
done

# --- summary ----------------------------------------------------------------
# median COLUMN WORKLOAD CONFIG
median () {
    awk -F'\t' -v c="$1" -v w="$2" -v k="$3" '$2 == w && $3 == k {print $c}' "$RESULTS" |
        sort -g | awk '{v[NR] = $1} END {
            if (NR == 0) exit
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# range WORKLOAD CONFIG: lowest-highest IOPS
range () {
    awk -F'\t' -v w="$1" -v k="$2" '$2 == w && $3 == k {print $4}' "$RESULTS" |
        sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%d-%d", lo, hi}'
}
# list COLUMN WORKLOAD CONFIG: the runs' values, comma-separated
list () {
    awk -F'\t' -v c="$1" -v w="$2" -v k="$3" '$2 == w && $3 == k {printf "%s%s", s, $c; s = ","}' "$RESULTS"
}
# paired WORKLOAD CONFIG: median over reps of (CONFIG's IOPS / A's IOPS in
# the same rep): runs of one rep are back to back, so slow drifts of the
# machine's load cancel better than in a ratio of medians.
paired () {
    awk -F'\t' -v w="$1" -v k="$2" '$2 == w && $3 == "A" {a[$1] = $4}
        $2 == w && $3 == k {x[$1] = $4}
        END {for (r in x) if (a[r] > 0) print x[r] / a[r]}' "$RESULTS" |
        sort -g | awk '{v[NR] = $1} END {
            if (NR == 0) {print "-"; exit}
            printf "%.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
has () { case " $CONFIGS " in *" $1 "*) return 0;; esac; return 1; }

say
say "Medians of $REPS interleaved runs of ${SECONDS_PER_RUN}s each; MB/s = 10^6 bytes/s;"
say "nbdkit CPU = user+system time of the whole nbdkit process per write;"
say "\"paired\" = median over reps of the ratio within one rep."
say
say "| workload | configuration | IOPS | MB/s | IOPS min-max | nbdkit CPU us/IO | IOPS vs A |"
say "|---|---|---:|---:|---:|---:|---:|"
for wl in $WORKLOADS; do
    a=$(median 4 "$wl" A)
    for cfg in $CONFIGS; do
        m=$(median 4 "$wl" "$cfg") b=$(median 5 "$wl" "$cfg")
        printf '| %s | %s | %.0f | %.1f | %s | %s | %s |\n' "${wl_name[$wl]}" "${label[$cfg]}" \
            "$m" "$(awk -v b="$b" 'BEGIN {print b / 1e6}')" "$(range "$wl" "$cfg")" \
            "$(median 9 "$wl" "$cfg")" "$( [ -n "$a" ] && div "$m" "$a" || echo -)"
    done
done
say
for wl in $WORKLOADS; do
    has A || break
    a=$(median 4 "$wl" A)
    if has N; then
        say "$wl: N/A = $(div "$(median 4 "$wl" N)" "$a"), paired $(paired "$wl" N)  (nbdkit's filter layer alone; CPU N/A $(div "$(median 9 "$wl" N)" "$(median 9 "$wl" A)"))"
    fi
    if has B; then
        r=$(div "$(median 4 "$wl" B)" "$a")
        say "$wl: B/A = $r, paired $(paired "$wl" B)  ($(awk -v r="$r" 'BEGIN {print (r >= 0.97) ? "meets the target >= 0.97" : "BELOW the target 0.97"}'); CPU B/A $(div "$(median 9 "$wl" B)" "$(median 9 "$wl" A)"))"
    fi
    if has C; then
        say "$wl: C/A = $(div "$(median 4 "$wl" C)" "$a"), paired $(paired "$wl" C)  (degrade cycles per run: $(list 6 "$wl" C); mirror caught up after (s): $(list 8 "$wl" C); mirror CPU us/IO: $(list 10 "$wl" C))"
    fi
done
say
say "filter-bench: load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
