#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb-bench.sh: what lb and lbd cost and how fast they move data.
#
#   bench/lb-bench.sh [BUILDDIR]
#
# BUILDDIR holds lb/lb, lbd/lbd, .libs/nbdkit-livewatch-filter.so and
# tests/lw-mirror (default: the repository this script lives in; build
# lw-mirror with "make tests/lw-mirror" or "make check").  Not part of
# "make check".  Everything runs on loopback; one lbd serves the whole
# run, with one client line per purpose.
#
# Three parts, each measured against a baseline run in the same script,
# interleaved rep by rep so that machine noise spreads over both sides;
# medians are reported:
#
#  writer   fio (nbd engine) against two nbdkit servers running side by
#           side, each on its own file-backed disk:
#             A  bare "nbdkit file DISK"                      (baseline)
#             B  nbdkit --filter=livewatch, lb (TLS) -> lbd live, and
#                converged before each run
#           Workloads: 4k random writes at QD32, 1M sequential writes at
#           QD8 (as bench/filter-bench.sh).  For B: the filter's degrade
#           and resume cycles during the run, and how long lb then needs
#           to catch up.  Target (issue 3): B/A >= 0.8.
#  catchup  a device of random data behind the filter; per mode (TLS,
#           plain), alternating which goes first:
#             scan     lb started against an absent image: the first pass
#                      compares hashes, every block differs, so the whole
#                      device is hashed on both sides and sent
#             catchup  then lb stopped, BENCH_REWRITE bytes rewritten
#                      through nbdkit (the filter degrades), lb started
#                      again: it continues without a scan and copies the
#                      dirty blocks (plus the ring's records)
#           Time = lb's log, "connected to" -> "live (image consistent)".
#           Targets (issue 3): >= 1 GB/s on loopback, TLS >= 0.8 x plain.
#  scan     the image identical to the device, nbdkit restarted (a new
#           epoch: full scan); time to converged against cat, openssl dgst
#           -sha256 (SHA-NI, one core) and coreutils sha256sum of the
#           device, all with a warm page cache (nothing dropped); bytes on
#           the wire in both directions (ss, lb's socket) as a fraction of
#           the device.
#
# Besides wall time, every run records the user+system CPU seconds of
# nbdkit, fio, lb and lbd (/proc/PID/stat): on a shared machine the wall
# times swing with other work, the CPU seconds much less, and the summary
# derives "CPU-bound" figures from them (the rate or ratio to expect if
# the processes had the 2 cores to themselves).  lbd runs on the same
# machine here; in production it is elsewhere, and the writer table says
# what that changes.  A full default run takes 3-4 minutes (BENCH_REPS=5:
# about 5).
#
# Environment (defaults in brackets):
#   BENCH_SECONDS   fio seconds per writer run [5]
#   BENCH_REPS      reps per measurement [3]
#   BENCH_SIZE      device size, M or G suffix [1G]
#   BENCH_REWRITE   bytes rewritten before a catch-up, M or G [half of
#                   BENCH_SIZE]
#   BENCH_DIR       folder for the disks and lbd's images [/dev/shm]
#                   (tmpfs: no device or writeback noise, and lbd's
#                   fdatasync costs nothing; set it to a disk-backed folder
#                   to include the storage).  Sockets, channels, keys and
#                   logs always live in a folder in /dev/shm.
#   BENCH_PARTS     parts to run, in this order [writer catchup scan]
#   BENCH_SHA256SUM reps that also time coreutils sha256sum [1] (it has no
#                   SHA-NI: several CPU-seconds per GiB; 0 skips it)
#   BENCH_CONVERGE  seconds to wait for any convergence [180]
#   BENCH_LB_OPTS   extra options for every lb, e.g. "-v" (logs each sync)
#                   or "--compress=1" []
#   BENCH_KEEP      non-empty: keep the run folder (logs) at the end

set -u
export LC_ALL=C
# Debian's tools first (a pyenv python3 may shadow /usr/bin/python3).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

script_dir=$(cd "$(dirname "$0")" && pwd)
builddir=$(cd "${1:-$script_dir/..}" 2>/dev/null && pwd) || {
    echo "lb-bench: no such build folder: ${1:-$script_dir/..}" >&2
    exit 2
}
FILTER=$builddir/.libs/nbdkit-livewatch-filter.so
MIRROR=$builddir/tests/lw-mirror
LB=$builddir/lb/lb
LBD=$builddir/lbd/lbd
PY=/usr/bin/python3

SECONDS_PER_RUN=${BENCH_SECONDS:-5}
REPS=${BENCH_REPS:-3}
SIZE=${BENCH_SIZE:-1G}
REWRITE=${BENCH_REWRITE:-}
DATA_DIR=${BENCH_DIR:-/dev/shm}
PARTS=${BENCH_PARTS:-writer catchup scan}
SHA_REPS=${BENCH_SHA256SUM:-1}
CONVERGE=${BENCH_CONVERGE:-180}
LB_OPTS=${BENCH_LB_OPTS:-}

die () { echo "lb-bench: $*" >&2; exit 1; }
say () { echo "$*"; }

# --- prerequisites ------------------------------------------------------
for v in BENCH_SECONDS:$SECONDS_PER_RUN BENCH_REPS:$REPS \
         BENCH_SHA256SUM:$SHA_REPS BENCH_CONVERGE:$CONVERGE; do
    [[ ${v#*:} =~ ^[0-9]+$ ]] || die "${v%%:*}=${v#*:}: must be a whole number"
done
[ "$SECONDS_PER_RUN" -ge 1 ] && [ "$REPS" -ge 1 ] \
    || die "BENCH_SECONDS and BENCH_REPS must be at least 1"
to_mb () { local n=${1%[MG]}; [ "${1: -1}" = G ] && n=$((n * 1024)); echo "$n"; }
[[ $SIZE =~ ^[0-9]+[MG]$ ]] || die "BENCH_SIZE=$SIZE: give e.g. 512M or 1G"
size_mb=$(to_mb "$SIZE")
[ -n "$REWRITE" ] || REWRITE=$((size_mb / 2))M
rewrite_mb=$(to_mb "$REWRITE")
[ "$size_mb" -ge 64 ] || die "BENCH_SIZE must be at least 64M"
[[ $REWRITE =~ ^[0-9]+[MG]$ ]] || die "BENCH_REWRITE=$REWRITE: give e.g. 512M"
[ "$rewrite_mb" -ge 1 ] && [ "$rewrite_mb" -le "$size_mb" ] \
    || die "BENCH_REWRITE must be between 1M and BENCH_SIZE"
for p in $PARTS; do
    case $p in writer|catchup|scan) ;;
    *) die "BENCH_PARTS: unknown part $p (writer, catchup or scan)";; esac
done
has_part () { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }

command -v nbdkit >/dev/null || die "nbdkit not found (apt-get install nbdkit)"
command -v fio >/dev/null || die "fio not found (apt-get install fio)"
fio --enghelp=nbd >/dev/null 2>&1 \
    || die "this fio has no nbd engine (Debian's fio has it; needs libnbd)"
command -v ss >/dev/null || die "ss not found (apt-get install iproute2)"
[ -x "$PY" ] || die "$PY not found (apt-get install python3)"
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
for f in "$LB" "$LBD" "$MIRROR"; do
    [ -x "$f" ] || die "$f not found: build first (autoreconf -fi && ./configure && make && make tests/lw-mirror), or pass the build folder"
done
[ -f "$FILTER" ] || die "$FILTER not found: build first, or pass the build folder"
nbdkit --filter="$FILTER" null --help >/dev/null 2>&1 \
    || die "nbdkit cannot load $FILTER (built for another nbdkit version? rebuild)"
[ -d "$DATA_DIR" ] && [ -w "$DATA_DIR" ] || die "BENCH_DIR=$DATA_DIR is not a writable folder"
[ -d /dev/shm ] && [ -w /dev/shm ] || die "/dev/shm is not a writable folder"
# Peak: writer part 3 copies (2 disks + image), catchup part 3 (device + 2 images).
need_kb=$(( (size_mb * 3 + 64) * 1024 ))
free_kb=$(df -Pk "$DATA_DIR" | awk 'NR==2 {print $4}')
[ "$free_kb" -ge "$need_kb" ] \
    || die "$DATA_DIR has $((free_kb/1024)) MiB free; needs $((need_kb/1024)) MiB (3 x BENCH_SIZE)"

# --- state and cleanup ----------------------------------------------------
RUN=$(mktemp -d /dev/shm/lbbench.XXXXXX) || die "mktemp in /dev/shm failed"
if [ "$(cd "$DATA_DIR" && pwd)" = /dev/shm ]; then DATA=$RUN
else DATA=$(mktemp -d "$DATA_DIR/lbbench.XXXXXX") || die "mktemp in $DATA_DIR failed"
fi
declare -A PID=()              # name -> pid of what this script started
cleanup () {
    local n
    for n in "${!PID[@]}"; do kill "${PID[$n]}" 2>/dev/null; done
    for n in "${!PID[@]}"; do wait "${PID[$n]}" 2>/dev/null; done
    if [ -n "${BENCH_KEEP:-}" ]; then
        echo "lb-bench: kept $RUN $DATA" >&2
    else
        rm -rf "$RUN"; [ "$DATA" = "$RUN" ] || rm -rf "$DATA"
    fi
}
trap cleanup EXIT
trap 'echo "lb-bench: interrupted" >&2; exit 130' INT TERM HUP

# stop NAME: SIGTERM one process this script started, and reap it.
stop () {
    local p=${PID[$1]:-}
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
    unset "PID[$1]"
}

# wait_for, now, sub, div, mbps, load1, cpu_busy, cpu_s, free_port, median,
# log_t, log_span, time_cmd, ss_bytes
. "$script_dir/bench-lib.sh"

# --- lbd: one process, one client line per purpose -------------------------
KEY=$RUN/key
head -c 64 /dev/urandom >"$KEY"; chmod 600 "$KEY"
P_WRITER=$(free_port) P_TLS=$(free_port) P_PLAIN=$(free_port)
while [ "$P_TLS" = "$P_WRITER" ]; do P_TLS=$(free_port); done
while [ "$P_PLAIN" = "$P_WRITER" ] || [ "$P_PLAIN" = "$P_TLS" ]; do P_PLAIN=$(free_port); done
cat >"$RUN/lbd.conf" <<CONF
client file=$DATA/writer.img key=$KEY listen=127.0.0.1/$P_WRITER type=simple name=writer
client file=$DATA/tls.img key=$KEY listen=127.0.0.1/$P_TLS type=simple name=tls
client file=$DATA/plain.img key=$KEY listen=127.0.0.1/$P_PLAIN type=simple name=plain encrypt=no
CONF
out=$("$LBD" -n "$RUN/lbd.conf" 2>&1)
[ "$out" = "configuration OK" ] || die "lbd -n: $out"

start_lbd () {
    "$LBD" --control="$RUN/lbd.ctl" "$RUN/lbd.conf" 2>>"$RUN/lbd.log" &
    PID[lbd]=$!
    wait_for 10 test -S "$RUN/lbd.ctl" || { tail -5 "$RUN/lbd.log" >&2; die "lbd did not start"; }
}

# start_nbdkit NAME DISK [UNIT]: nbdkit on $RUN/NAME.sock; with UNIT,
# through the filter (channel $RUN/livewatch-UNIT).
start_nbdkit () {
    local name=$1 disk=$2 unit=${3:-}
    local args=(-f -U "$RUN/$name.sock" -P "$RUN/$name.pid" --exit-with-parent)
    rm -f "$RUN/$name.sock" "$RUN/$name.pid"
    if [ -n "$unit" ]; then
        nbdkit "${args[@]}" --filter="$FILTER" file "$disk" \
            livewatch-unit="$unit" livewatch-dir="$RUN" 2>>"$RUN/$name.log" &
    else
        nbdkit "${args[@]}" file "$disk" 2>>"$RUN/$name.log" &
    fi
    PID[$name]=$!
    wait_for 20 test -s "$RUN/$name.pid" \
        || { tail -5 "$RUN/$name.log" >&2; die "nbdkit $name did not start"; }
    if [ -n "$unit" ]; then
        wait_for 20 "$MIRROR" --stat --dir="$RUN" "$unit" \
            || die "the livewatch channel $unit did not become ready"
    fi
}
uri () { echo "nbd+unix:///?socket=$RUN/$1.sock"; }

# start_lb NAME UNIT DISK PORT LOG [lb options]: lb in the background.
start_lb () {
    local name=$1 unit=$2 disk=$3 port=$4 log=$5; shift 5
    # shellcheck disable=SC2086
    "$LB" --dir="$RUN" --retry=1 --name="$name" $LB_OPTS "$@" \
        "$unit" "$disk" 127.0.0.1 "$port" "$KEY" 2>>"$log" &
    PID[lb-$name]=$!
}

stat_of () { "$MIRROR" --stat --dir="$RUN" "$1" 2>/dev/null | sed -n "s/^$2=//p"; }
state_of () { sed -n "s/^$2=//p" "$1.state" 2>/dev/null; }
# converged UNIT IMAGE: the channel is normal and empty, lbd's image live.
converged () {
    [ "$(stat_of "$1" converged)" = 1 ] && [ "$(state_of "$2" phase)" = live ]
}
wait_converged () {            # wait_converged UNIT IMAGE WHAT
    wait_for "$CONVERGE" converged "$1" "$2" || {
        "$MIRROR" --stat --dir="$RUN" "$1" >&2
        cat "$2.state" >&2 2>/dev/null
        die "$3: not converged within ${CONVERGE}s (logs in $RUN; BENCH_KEEP=1 keeps them)"
    }
}

# lb_status_num UNIT KEY: a number from lb --status --json.
lb_status_num () {
    "$LB" --status --json --dir="$RUN" "$1" 2>/dev/null | "$PY" -c '
import json, sys
try: print(int(json.load(sys.stdin).get(sys.argv[1], 0)))
except Exception: print(0)' "$2"
}

# fio_json FILE: "IOPS BW_BYTES CPU_SECONDS IOS" of the write side (CPU:
# fio's own, from its usr_cpu and sys_cpu over the job's runtime).  fio may print a
# line ("fio: connected to NBD server") before its JSON.
fio_json () {
    "$PY" - "$1" <<'EOF'
import json, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.index("{"):])["jobs"][0]
w = j["write"]
cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] / 1000
print("%.0f %.0f %.2f %d" % (w["iops"], w["bw_bytes"], cpu, w["total_ios"]))
EOF
}

# col FILE COLUMN KEY1 [KEY2]: column COLUMN of the TSV lines whose
# columns 2 (and 3) are KEY1 (and KEY2).
col () {
    awk -F'\t' -v c="$2" -v k="$3" -v l="${4:-}" '$2 == k && (l == "" || $3 == l) {print $c}' "$1"
}

# --- prepare ----------------------------------------------------------------
say "lb-bench: builddir $builddir"
say "lb-bench: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r)"
say "lb-bench: $(nbdkit --version), $(fio --version), $("$LB" --version), $(openssl version | cut -d' ' -f1-2)"
say "lb-bench: parts: $PARTS; device $SIZE in $DATA_DIR; $REPS reps; fio ${SECONDS_PER_RUN}s; rewrite $REWRITE${LB_OPTS:+; lb options $LB_OPTS}"
say "lb-bench: load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
say
start_lbd
T_START=$(now)
read -r BUSY0 TOTAL0 < <(cpu_busy)

# ============================================================================
# Part 1: writer throughput, bare nbdkit against nbdkit + filter + lb + lbd.
# ============================================================================
W=$RUN/writer.tsv; : >"$W"
if has_part writer; then
    say "== writer: fio against bare nbdkit (A) and nbdkit + livewatch + lb (TLS) + lbd live (B)"
    for d in a b; do
        dd if=/dev/zero of="$DATA/disk-$d" bs=1M count="$size_mb" status=none \
            || die "cannot write $DATA/disk-$d"
    done
    start_nbdkit wa "$DATA/disk-a"
    start_nbdkit wb "$DATA/disk-b" 1
    start_lb writer 1 "$DATA/disk-b" "$P_WRITER" "$RUN/lb-writer.log"
    wait_converged 1 "$DATA/writer.img" "writer: first scan"

    declare -A wl_args=([rand4k]="--rw=randwrite --bs=4k --iodepth=32 --norandommap --randrepeat=0"
                        [seq1m]="--rw=write --bs=1M --iodepth=8")
    declare -A wl_name=([rand4k]="4k randwrite QD32" [seq1m]="1M seq write QD8")
    # Columns of $W: rep workload config IOPS bw_bytes degrades resumes
    # catchup_s live_fraction nbdkit_cpu fio_cpu lb_cpu lbd_cpu
    # after_cpu load ios
    for rep in $(seq 1 "$REPS"); do
        for wl in rand4k seq1m; do
            # A B in odd reps, B A in even ones.
            cfgs="A B"; [ $((rep % 2)) = 0 ] && cfgs="B A"
            for cfg in $cfgs; do
                name=wa; [ "$cfg" = B ] && name=wb
                # Never measure while lb is still catching up from the last run.
                wait_converged 1 "$DATA/writer.img" "writer: before a run"
                d0=$(stat_of 1 degrades) r0=$(stat_of 1 resumes)
                w0=$(stat_of 1 writes) q0=$(stat_of 1 records)
                lbc0=$(cpu_s "${PID[lb-writer]}") lbdc0=$(cpu_s "${PID[lbd]}")
                nc0=$(cpu_s "${PID[$name]}")
                load=$(load1)
                out=$RUN/fio-$rep-$wl-$cfg.json
                # shellcheck disable=SC2086
                fio --name="$wl" --ioengine=nbd --uri="$(uri $name)" ${wl_args[$wl]} \
                    --numjobs=1 --time_based --runtime="$SECONDS_PER_RUN" \
                    --output-format=json >"$out" 2>>"$RUN/fio.log" \
                    || { tail -5 "$RUN/fio.log" >&2; die "fio failed ($wl, $cfg)"; }
                nc=$(sub "$(cpu_s "${PID[$name]}")" "$nc0")
                lbc=$(sub "$(cpu_s "${PID[lb-writer]}")" "$lbc0")
                lbdc=$(sub "$(cpu_s "${PID[lbd]}")" "$lbdc0")
                read -r iops bw fcpu ios < <(fio_json "$out")
                [ -n "${ios:-}" ] || die "cannot read fio's output $out"
                deg=- res=- cu=- live=- after=-
                if [ "$cfg" = B ]; then
                    deg=$(( $(stat_of 1 degrades) - d0 ))
                    # Writes that went through the ring (normal mode) rather
                    # than only into the bitmap (degraded).
                    live=$(div "$(( $(stat_of 1 records) - q0 ))" "$(( $(stat_of 1 writes) - w0 ))")
                    a0=$(awk -v a="$(cpu_s "${PID[lb-writer]}")" -v b="$(cpu_s "${PID[lbd]}")" 'BEGIN {print a + b}')
                    t0=$(now)
                    wait_converged 1 "$DATA/writer.img" "writer: after a run"
                    cu=$(sub "$(now)" "$t0")
                    after=$(awk -v a="$(cpu_s "${PID[lb-writer]}")" -v b="$(cpu_s "${PID[lbd]}")" \
                                -v c="$a0" 'BEGIN {printf "%.2f", a + b - c}')
                    # Resumes counted once caught up: whole degrade cycles.
                    res=$(( $(stat_of 1 resumes) - r0 ))
                else
                    lbc=- lbdc=-
                fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                    "$rep" "$wl" "$cfg" "$iops" "$bw" "$deg" "$res" "$cu" "$live" \
                    "$nc" "$fcpu" "$lbc" "$lbdc" "$after" "$load" "$ios" >>"$W"
                printf 'rep %d %-6s %s %7d IOPS %7.1f MB/s  CPU nbdkit %.2fs fio %.2fs  load %-5s%s\n' \
                    "$rep" "$wl" "$cfg" "$iops" "$(awk -v b="$bw" 'BEGIN {print b / 1e6}')" \
                    "$nc" "$fcpu" "$load" \
                    "$( [ "$cfg" = B ] && echo " lb ${lbc}s lbd ${lbdc}s; degrades=$deg resumes=$res queued live $live; caught up ${cu}s after (lb+lbd ${after}s)")"
            done
        done
    done
    # The mirror must be exact: a benchmark of a broken pipeline is worthless.
    stop lb-writer
    cmp -s "$DATA/disk-b" "$DATA/writer.img" || die "writer: image differs from disk-b after convergence"
    stop wa; stop wb
    rm -f "$DATA/disk-a" "$DATA/disk-b" "$DATA/writer.img"
    say
fi

# ============================================================================
# Part 2: scan of a device whose image is absent, and catch-up, TLS and plain.
# ============================================================================
C=$RUN/catchup.tsv; : >"$C"
DEV=$DATA/device
prepare_device () {
    [ -f "$DEV" ] && return 0
    say "lb-bench: filling a $SIZE device with random data ..."
    # AES-CTR output: random for every purpose here and much faster than
    # /dev/urandom.
    openssl enc -aes-128-ctr -nosalt -pass pass:"$RANDOM$RANDOM" -pbkdf2 \
        </dev/zero 2>/dev/null | head -c "$((size_mb << 20))" >"$DEV"
    [ "$(stat -c %s "$DEV")" = "$((size_mb << 20))" ] || die "cannot write $DEV"
    start_nbdkit dev "$DEV" 2
}
# mode_port MODE, mode_opt MODE
mode_port () { [ "$1" = tls ] && echo "$P_TLS" || echo "$P_PLAIN"; }
mode_opt () { [ "$1" = plain ] && echo --no-encrypt; }

# measure_lb KIND MODE REP LOG BYTES: lb was just started; wait for it to
# converge and record one line of $C.
measure_lb () {
    local kind=$1 mode=$2 rep=$3 log=$4 bytes=$5 secs wire lbc lbdc
    wait_converged 2 "$DATA/$mode.img" "$kind ($mode)"
    secs=$(log_span "$log" "connected to" "live .image consistent")
    [ "$secs" != - ] || die "$kind ($mode): no timing lines in $log"
    wire=$(ss_bytes "$(mode_port "$mode")")
    lbc=$(cpu_s "${PID[lb-$mode]}")
    lbdc=$(awk -v a="$(cpu_s "${PID[lbd]}")" -v b="$LBD_CPU0" 'BEGIN {printf "%.2f", a - b}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$kind" "$mode" "$bytes" "$secs" \
        "${wire% *}" "$lbc" "$lbdc" "$LOAD" >>"$C"
    printf 'rep %d %-7s %-5s %5d MiB in %6.3fs = %5s MB/s  wire %5d MiB  CPU lb %5.2fs lbd %5.2fs  load %s\n' \
        "$rep" "$kind" "$mode" "$((bytes >> 20))" "$secs" "$(mbps "$bytes" "$secs")" \
        "$(( ${wire% *} >> 20 ))" "$lbc" "$lbdc" "$LOAD"
}

if has_part catchup; then
    say "== catchup: lb -> lbd over TLS and plain (device of random data, $SIZE)"
    prepare_device
    for rep in $(seq 1 "$REPS"); do
        modes="tls plain"; [ $((rep % 2)) = 0 ] && modes="plain tls"
        for mode in $modes; do
            port=$(mode_port "$mode")
            # scan: the image is absent, so every block's hash differs.
            rm -f "$DATA/$mode.img" "$DATA/$mode.img.state"
            log=$RUN/lb-$rep-scan-$mode.log
            LBD_CPU0=$(cpu_s "${PID[lbd]}") LOAD=$(load1)
            start_lb "$mode" 2 "$DEV" "$port" "$log" $(mode_opt "$mode")
            measure_lb scan "$mode" "$rep" "$log" "$((size_mb << 20))"
            grep -q "full scan" "$log" || die "scan ($mode): lb did not scan"
            stop "lb-$mode"

            # catchup: rewrite with lb stopped, then lb continues.
            fio --name=rewrite --ioengine=nbd --uri="$(uri dev)" --rw=write --bs=1M \
                --iodepth=8 --size="$REWRITE" --offset=0 --output-format=json \
                >"$RUN/fio-rewrite.json" 2>>"$RUN/fio.log" \
                || { tail -5 "$RUN/fio.log" >&2; die "fio rewrite failed"; }
            oos=$(lb_status_num 2 out_of_sync_bytes) q=$(lb_status_num 2 queue_used)
            log=$RUN/lb-$rep-catchup-$mode.log
            LBD_CPU0=$(cpu_s "${PID[lbd]}") LOAD=$(load1)
            start_lb "$mode" 2 "$DEV" "$port" "$log" $(mode_opt "$mode")
            measure_lb catchup "$mode" "$rep" "$log" "$((oos + q))"
            grep -q "continuing from seq" "$log" || die "catchup ($mode): lb scanned instead of continuing"
            stop "lb-$mode"
            # Not timed: the image must equal the device (no writes since).
            cmp -s "$DEV" "$DATA/$mode.img" || die "catchup ($mode): the image differs from the device"
        done
    done
    rm -f "$DATA/plain.img" "$DATA/plain.img.state"
    say
fi

# ============================================================================
# Part 3: scan of an unchanged image (new epoch), against cat and hashing.
# ============================================================================
S=$RUN/scan.tsv; : >"$S"
if has_part scan; then
    say "== scan: unchanged $SIZE image, nbdkit restarted (new epoch), TLS, warm page cache"
    prepare_device
    if ! cmp -s "$DEV" "$DATA/tls.img" 2>/dev/null; then
        # Make the image identical first.  A stale image is removed, not
        # continued: its (epoch, seq) may look current while the blocks the
        # plain session copied never reached it (one unit, two images).
        rm -f "$DATA/tls.img" "$DATA/tls.img.state"
        start_lb tls 2 "$DEV" "$P_TLS" "$RUN/lb-setup.log"
        wait_converged 2 "$DATA/tls.img" "scan: setup"
        stop lb-tls
        cmp -s "$DEV" "$DATA/tls.img" || die "scan: setup left the image different"
    fi
    devbytes=$((size_mb << 20))
    scanned_all () { [ "$(lb_status_num 2 bytes_scanned)" = "$devbytes" ]; }
    for rep in $(seq 1 "$REPS"); do
        # lb, then the references, in odd reps; the other way in even ones.
        order="lb cat openssl sha256sum"
        [ $((rep % 2)) = 0 ] && order="sha256sum openssl cat lb"
        for what in $order; do
            LOAD=$(load1)
            case $what in
            lb)
                stop dev
                start_nbdkit dev "$DEV" 2
                log=$RUN/lb-$rep-unchanged.log
                lbd0=$(cpu_s "${PID[lbd]}")
                start_lb tls 2 "$DEV" "$P_TLS" "$log"
                wait_converged 2 "$DATA/tls.img" "scan"
                secs=$(log_span "$log" "connected to" "live .image consistent")
                grep -q "full scan: the image is from another capture epoch" "$log" \
                    || die "scan: lb did not scan for a new epoch"
                read -r acked recvd < <(ss_bytes "$P_TLS")
                lbc=$(cpu_s "${PID[lb-tls]}")
                lbdc=$(awk -v a="$(cpu_s "${PID[lbd]}")" -v b="$lbd0" 'BEGIN {printf "%.2f", a - b}')
                # lb's own count (published once a second): application bytes sent.
                wait_for 5 scanned_all || :
                app=$(lb_status_num 2 bytes_sent) same=$(lb_status_num 2 bytes_same)
                stop lb-tls
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" lb "$secs" \
                    "$(awk -v a="$lbc" -v b="$lbdc" 'BEGIN {print a + b}')" \
                    "$acked" "$recvd" "$app" "$same" "$LOAD" >>"$S"
                printf 'rep %d lb scan     %6.3fs  CPU lb %.2fs lbd %.2fs  wire %d B out %d B in  (lb: %d B sent, %d MiB same)  load %s\n' \
                    "$rep" "$secs" "$lbc" "$lbdc" "$acked" "$recvd" "$app" "$((same >> 20))" "$LOAD" ;;
            cat|openssl|sha256sum)
                [ "$what" = sha256sum ] && [ "$rep" -gt "$SHA_REPS" ] && continue
                case $what in
                cat) r=$(time_cmd cat "$DEV") ;;
                openssl) r=$(time_cmd openssl dgst -sha256 "$DEV") ;;
                sha256sum) r=$(time_cmd sha256sum "$DEV") ;;
                esac
                printf '%s\t%s\t%s\t%s\t-\t-\t-\t-\t%s\n' "$rep" "$what" "${r% *}" "${r#* }" "$LOAD" >>"$S"
                printf 'rep %d %-12s %6.3fs  CPU %.2fs  load %s\n' "$rep" "$what" "${r% *}" "${r#* }" "$LOAD" ;;
            esac
        done
    done
    say
fi

# --- summary ----------------------------------------------------------------
T_END=$(now)
read -r BUSY1 TOTAL1 < <(cpu_busy)
say "== summary: medians of $REPS interleaved reps; MB/s = 10^6 bytes/s; MiB = 2^20 bytes"
if has_part writer; then
    say
    say "Writer throughput (fio nbd engine, ${SECONDS_PER_RUN}s runs, $SIZE disk in $DATA_DIR):"
    say
    say "| workload | A bare nbdkit | B + livewatch + lb + lbd (TLS) | B/A | paired B/A | target >= 0.8 | degrades per B run | writes queued live (B) | lb caught up after (s) |"
    say "|---|---:|---:|---:|---:|---|---|---|---|"
    for wl in rand4k seq1m; do
        a=$(col "$W" 4 "$wl" A | median) b=$(col "$W" 4 "$wl" B | median)
        ab=$(col "$W" 5 "$wl" A | median) bb=$(col "$W" 5 "$wl" B | median)
        r=$(div "$b" "$a")
        paired=$(awk -F'\t' -v w="$wl" '$2 == w && $3 == "A" {a[$1] = $4} $2 == w && $3 == "B" {b[$1] = $4}
            END {for (k in b) if (a[k] > 0) print b[k] / a[k]}' "$W" | median)
        printf '| %s | %.0f IOPS, %.0f MB/s | %.0f IOPS, %.0f MB/s | %s | %.3f | %s | %s | %s | %s |\n' \
            "${wl_name[$wl]}" "$a" "$(awk -v x="$ab" 'BEGIN {print x / 1e6}')" \
            "$b" "$(awk -v x="$bb" 'BEGIN {print x / 1e6}')" "$r" "$paired" \
            "$(awk -v r="$r" 'BEGIN {print (r >= 0.8) ? "met" : "MISSED"}')" \
            "$(col "$W" 6 "$wl" B | paste -sd, -)" "$(col "$W" 9 "$wl" B | paste -sd, -)" \
            "$(col "$W" 8 "$wl" B | paste -sd, -)"
    done
    say
    say "CPU per write (user+system, microseconds per I/O, medians): what the run cost the machine."
    say "\"CPU-bound B/A\" = A's CPU per I/O / B's: the ratio to expect where the writer is CPU-bound"
    say "on these 2 cores (no other load); \"lbd remote\" leaves lbd out, as in production."
    say
    say "| workload | A: nbdkit + fio | B: nbdkit + fio | B: lb | B: lbd | B: lb+lbd after the run, s | CPU-bound B/A | same, lbd remote |"
    say "|---|---:|---:|---:|---:|---:|---:|---:|"
    for wl in rand4k seq1m; do
        pio () {    # pio CONFIG EXPR: median over runs of EXPR (awk, per I/O, us)
            awk -F'\t' -v w="$wl" -v k="$1" '$2 == w && $3 == k && $16 > 0 {print ('"$2"') * 1e6 / $16}' "$W" | median
        }
        ca=$(pio A '$10 + $11') cb=$(pio B '$10 + $11') cl=$(pio B '$12') cd=$(pio B '$13')
        printf '| %s | %.1f | %.1f | %.1f | %.1f | %s | %s | %s |\n' "${wl_name[$wl]}" \
            "$ca" "$cb" "$cl" "$cd" "$(col "$W" 14 "$wl" B | median)" \
            "$(awk -v a="$ca" -v b="$cb" -v l="$cl" -v d="$cd" 'BEGIN {printf "%.2f", a / (b + l + d)}')" \
            "$(awk -v a="$ca" -v b="$cb" -v l="$cl" 'BEGIN {printf "%.2f", a / (b + l)}')"
    done
fi
if has_part catchup; then
    declare -A TLSR=()
    say
    say "lb -> lbd throughput ($SIZE device of random data, images in $DATA_DIR; time from lb's"
    say "\"connected to\" to its \"live (image consistent)\" log line; CPU = user+system seconds;"
    say "CPU-bound MB/s = bytes / the larger of lb's and lbd's CPU seconds: the rate if each had a core):"
    say
    say "| run | mode | MiB moved | seconds | MB/s | target >= 1000 | wire MiB | lb CPU s | lbd CPU s | CPU-bound MB/s |"
    say "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"
    for kind in scan catchup; do
        for mode in tls plain; do
            by=$(col "$C" 4 "$kind" "$mode" | median) se=$(col "$C" 5 "$kind" "$mode" | median)
            rate=$(awk -F'\t' -v k="$kind" -v m="$mode" \
                '$2 == k && $3 == m && $5 > 0 {print $4 / $5 / 1e6}' "$C" | median)
            # lb and lbd work at once: the slower of the two bounds the rate
            # when each has a core of its own.
            cpu=$(awk -F'\t' -v k="$kind" -v m="$mode" '$2 == k && $3 == m && $7 + $8 > 0 {
                print $4 / ($7 > $8 ? $7 : $8) / 1e6}' "$C" | median)
            printf '| %s | %s | %.0f | %.3f | %.0f | %s | %.0f | %s | %s | %.0f |\n' "$kind" "$mode" \
                "$(awk -v b="$by" 'BEGIN {print b / 1048576}')" "$se" "$rate" \
                "$(awk -v r="$rate" 'BEGIN {print (r >= 1000) ? "met" : "MISSED"}')" \
                "$(col "$C" 6 "$kind" "$mode" | median | awk '{print $1 / 1048576}')" \
                "$(col "$C" 7 "$kind" "$mode" | median)" "$(col "$C" 8 "$kind" "$mode" | median)" "$cpu"
        done
        t=$(awk -F'\t' -v k="$kind" '$2 == k && $5 > 0 && $3 == "tls" {print $4 / $5 / 1e6}' "$C" | median)
        p=$(awk -F'\t' -v k="$kind" '$2 == k && $5 > 0 && $3 == "plain" {print $4 / $5 / 1e6}' "$C" | median)
        paired=$(awk -F'\t' -v k="$kind" '$2 == k && $5 > 0 {r[$1, $3] = $4 / $5; reps[$1]}
            END {for (i in reps) if (r[i, "plain"] > 0 && r[i, "tls"] > 0) print r[i, "tls"] / r[i, "plain"]}' "$C" | median)
        ct=$(awk -F'\t' -v k="$kind" '$2 == k && $3 == "tls" {print $7 + $8}' "$C" | median)
        cp=$(awk -F'\t' -v k="$kind" '$2 == k && $3 == "plain" {print $7 + $8}' "$C" | median)
        TLSR[$kind]="$kind: TLS/plain = $(div "$t" "$p") (paired $(printf %.3f "$paired"); target >= 0.8: $(awk -v r="$(div "$t" "$p")" 'BEGIN {print (r >= 0.8) ? "met" : "MISSED"}')); CPU-seconds TLS/plain = $(div "$ct" "$cp")"
    done
    say
    say "${TLSR[scan]}"
    say "${TLSR[catchup]}"
fi
if has_part scan; then
    say
    say "Scan of an unchanged $SIZE image (nbdkit restarted: new epoch; TLS; warm page cache, no caches dropped):"
    say
    say "| what | seconds | GB/s | CPU s (lb: lb + lbd) | vs cat (time) | wire bytes (out + in) | wire / device |"
    say "|---|---:|---:|---:|---:|---:|---:|"
    cat_s=$(col "$S" 3 cat | median)
    for what in lb cat openssl sha256sum; do
        se=$(col "$S" 3 "$what" | median)
        [ "$se" = - ] && continue
        label=$what
        case $what in
        lb) label="lb + lbd scan (connected -> live)";;
        cat) label="cat DEVICE >/dev/null";;
        openssl) label="openssl dgst -sha256 DEVICE";;
        sha256sum) label="sha256sum DEVICE";;
        esac
        w=- f=-
        if [ "$what" = lb ]; then
            w=$(awk -F'\t' '$2 == "lb" {print $5 + $6}' "$S" | median)
            f=$(awk -v w="$w" -v d="$((size_mb << 20))" 'BEGIN {printf "%.5f%%", 100 * w / d}')
            w=$(printf '%.0f' "$w")
        fi
        printf '| %s | %.3f | %.2f | %s | %s | %s | %s |\n' "$label" "$se" \
            "$(awk -v s="$se" -v d="$((size_mb << 20))" 'BEGIN {print d / s / 1e9}')" \
            "$(col "$S" 4 "$what" | median)" "$(div "$se" "$cat_s")" "$w" "$f"
    done
fi
say
say "lb-bench: load average at end: $(cut -d' ' -f1-3 /proc/loadavg); took $(sub "$T_END" "$T_START" | cut -d. -f1)s;" \
    "the machine's CPUs were $(awk -v b=$((BUSY1 - BUSY0)) -v t=$((TOTAL1 - TOTAL0)) 'BEGIN {printf "%.0f", t ? 100 * b / t : 0}')% busy (this run and everything else)"
say "lb-bench: raw per-run data: $W $C $S (removed at exit unless BENCH_KEEP=1)"
