#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# mirror-bench.sh: a burst of random writes with the mirror running,
# livebackup against QEMU's live mirror and against no mirror at all
# (issue 11, benchmark 6).
#
#   bench/mirror-bench.sh [BUILDDIR]
#
# The same burst (fio, nbd engine, 4 KiB random writes at QD32,
# BENCH_BURST bytes in all, default 512M) on a BENCH_SIZE (1G) disk of
# random data, three ways, interleaved rep by rep (the order rotates):
#   A  bare: nbdkit file DISK                                (baseline)
#   B  livebackup: nbdkit --filter=livewatch file DISK, lb (TLS) to lbd,
#      live and converged before the burst
#   Q  QEMU: qemu-storage-daemon serving DISK over NBD to fio, with a
#      blockdev-mirror job (sync=full, background copy mode) to an NBD
#      target (nbdkit file), READY before the burst
# The mirror's target (lbd, or the NBD target) runs in a network
# namespace of its own behind a veth pair: the bytes sent are the veth's
# counters (IP packets, headers included) from the burst's start until
# the mirror has caught up, counted outside the programs.  Reported per
# way: the writer's IOPS (ratio against A), the bytes sent against the
# bytes written, and how long after the burst the mirror caught up (B:
# lb live with every record confirmed by lbd and no dirty block; Q: the
# job READY with nothing left to copy).
# After each run the target must equal the disk (cmp), or the run fails.
#
# Needs root (ip netns), nbdkit, fio, qemu-storage-daemon (Debian:
# qemu-system-common), /usr/bin/python3.  Not part of make check.
#
# Environment: BENCH_REPS [3], BENCH_SIZE [1G], BENCH_BURST [512M],
# BENCH_DIR [/dev/shm] (disks and images), BENCH_WAYS [A B Q],
# BENCH_KEEP (keep the run folder), BENCH_PERF=1 (perf record of the
# whole machine during each burst, at 999 Hz: CPU samples per program
# and way are printed at the end; perf's own cost slows every way).

set -u
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

script_dir=$(cd "$(dirname "$0")" && pwd)
builddir=$(cd "${1:-$script_dir/..}" 2>/dev/null && pwd) || {
    echo "mirror-bench: no such build folder: ${1:-$script_dir/..}" >&2; exit 2; }
. "$script_dir/bench-lib.sh"
FILTER=$builddir/.libs/nbdkit-livewatch-filter.so
LB=$builddir/lb/lb
LBD=$builddir/lbd/lbd
PY=/usr/bin/python3
REPS=${BENCH_REPS:-3}
SIZE=${BENCH_SIZE:-1G}
BURST=${BENCH_BURST:-512M}
DATA_DIR=${BENCH_DIR:-/dev/shm}
WAYS=${BENCH_WAYS:-A B Q}

die () { echo "mirror-bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (a network namespace for the mirror's target)"
for c in nbdkit fio qemu-storage-daemon ip; do
    command -v "$c" >/dev/null || die "$c not found (qemu-storage-daemon: apt-get install qemu-system-common)"
done
[ -x "$LB" ] && [ -x "$LBD" ] && [ -f "$FILTER" ] || die "build first (make)"
bytes_of () { numfmt --from=iec "$1"; }
size_b=$(bytes_of "$SIZE") burst_b=$(bytes_of "$BURST") || die "bad BENCH_SIZE or BENCH_BURST"

RUN=$(mktemp -d /dev/shm/mirbench.XXXXXX) || die "mktemp failed"
DATA=$(mktemp -d "$DATA_DIR/mirbench-data.XXXXXX") || die "mktemp in $DATA_DIR failed"
NS=mirbench$$ NET=10.251.$(( $$ % 250 + 1 ))
declare -A PID=()
cleanup () {
    local n
    for n in "${!PID[@]}"; do kill "${PID[$n]}" 2>/dev/null; done
    for n in "${!PID[@]}"; do wait "${PID[$n]}" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    ip link del "$NS-h" 2>/dev/null
    if [ -n "${BENCH_KEEP:-}" ]; then echo "mirror-bench: kept $RUN $DATA" >&2
    else rm -rf "$RUN" "$DATA"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
stop () {
    local p=${PID[$1]:-}
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
    unset "PID[$1]"
}

# The target's side: namespace $NS at $NET.2, the host at $NET.1.
ip netns add "$NS" || die "ip netns add failed"
ip link add "$NS-h" type veth peer name "$NS-n" || die "veth failed"
ip link set "$NS-n" netns "$NS"
ip addr add "$NET.1/24" dev "$NS-h"; ip link set "$NS-h" up
ip -n "$NS" addr add "$NET.2/24" dev "$NS-n"
ip -n "$NS" link set "$NS-n" up; ip -n "$NS" link set lo up
# host -> namespace bytes (what the mirror sends), and back
sent () { cat "/sys/class/net/$NS-h/statistics/tx_bytes"; }
back () { cat "/sys/class/net/$NS-h/statistics/rx_bytes"; }

DISK=$DATA/disk
echo "mirror-bench: $(nproc) CPUs, $(nbdkit --version), $(fio --version), $(qemu-storage-daemon --version | head -1)"
echo "mirror-bench: disk $SIZE in $DATA_DIR, burst $BURST of 4k random writes at QD32, $REPS reps, ways: $WAYS; load $(cut -d' ' -f1-3 /proc/loadavg)"
openssl enc -aes-128-ctr -nosalt -pass pass:"$RANDOM$RANDOM" -pbkdf2 </dev/zero 2>/dev/null |
    head -c "$size_b" >"$DISK"
[ "$(stat -c %s "$DISK")" = "$size_b" ] || die "cannot write $DISK"

# burst URI: the burst through NBD URI; prints "IOPS RUNTIME_S".
# With BENCH_PERF=1, the machine's CPU samples meanwhile go to
# $RUN/perf-$w-$rep.data (w and rep: the loop's way and rep).
burst () {
    local perf=
    if [ "${BENCH_PERF:-0}" = 1 ]; then
        perf record -a -q -F 999 -o "$RUN/perf-$w-$rep.data" -- sleep 600 \
            >/dev/null 2>>"$RUN/perf.log" &
        perf=$!
        sleep 0.5
    fi
    fio --name=burst --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k \
        --iodepth=32 --numjobs=1 --size="$size_b" --io_size="$burst_b" \
        --randrepeat=0 --output-format=json >"$RUN/fio.json" 2>>"$RUN/fio.log" ||
        { tail -5 "$RUN/fio.log" >&2; die "fio failed on $1"; }
    if [ -n "$perf" ]; then kill -INT "$perf"; wait "$perf" 2>/dev/null; fi
    "$PY" - "$RUN/fio.json" <<'EOF'
import json, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.index("{"):])["jobs"][0]
print("%.0f %.3f" % (j["write"]["iops"], j["job_runtime"] / 1000))
EOF
}

start_nbdkit () {               # start_nbdkit NAME [nbdkit args...]
    local name=$1; shift
    rm -f "$RUN/$name.sock" "$RUN/$name.pid"
    nbdkit -f -U "$RUN/$name.sock" -P "$RUN/$name.pid" "$@" 2>>"$RUN/$name.log" &
    PID[$name]=$!
    wait_for 20 test -s "$RUN/$name.pid" || { tail -5 "$RUN/$name.log" >&2; die "nbdkit $name did not start"; }
}
uri () { echo "nbd+unix:///?socket=$RUN/$1.sock"; }

# --- B: livebackup ------------------------------------------------------------
KEY=$RUN/key; head -c 64 /dev/urandom >"$KEY"; chmod 600 "$KEY"
PORT=10809
echo "client file=$DATA/b.img key=$KEY listen=$NET.2/$PORT type=simple name=b" >"$RUN/lbd.conf"
live () { "$LB" --status --dir="$RUN" 1 >/dev/null 2>&1; }
# current: live, and nothing left to send or to confirm (every record
# released, no dirty block).  "live" alone is the phase: records of the
# burst may still be in flight, and a cmp then fails.
current () {
    "$LB" --status --json --dir="$RUN" 1 2>/dev/null | /usr/bin/python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
sys.exit(0 if s.get("phase") == "live" and s["head_seq"] == s["released_seq"]
         and s["out_of_sync_bytes"] == 0 else 1)'
}
way_B () {
    local iops rt t0 s0 r0 t1 caught
    cp "$DISK" "$DATA/b-disk"
    start_nbdkit b --filter="$FILTER" file "$DATA/b-disk" livewatch-unit=1 livewatch-dir="$RUN"
    rm -f "$RUN/lbd.ctl"
    ip netns exec "$NS" "$LBD" --control="$RUN/lbd.ctl" "$RUN/lbd.conf" 2>>"$RUN/lbd.log" &
    PID[lbd]=$!
    wait_for 10 test -S "$RUN/lbd.ctl" || die "lbd did not start"
    "$LB" --dir="$RUN" --retry=1 1 "$DATA/b-disk" "$NET.2" "$PORT" "$KEY" 2>>"$RUN/lb.log" &
    PID[lb]=$!
    wait_for 300 current || die "B: lb did not become live and current (see $RUN/lb.log)"
    s0=$(sent) r0=$(back) t0=$(now)
    read -r iops rt < <(burst "$(uri b)")
    t1=$(now)
    wait_for 600 current || die "B: lb did not catch up after the burst"
    caught=$(sub "$(now)" "$t1")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" B "$iops" "$(( $(sent) - s0 ))" "$caught" "$(( $(back) - r0 ))" >>"$RES"
    stop lb; stop lbd; stop b
    cmp -s "$DATA/b-disk" "$DATA/b.img" || die "B: the image differs from the disk"
    rm -f "$DATA/b-disk" "$DATA/b.img" "$DATA/b.img.state"
}

# --- Q: QEMU's mirror -----------------------------------------------------------
# qmp CMD-JSON...: send each command to the storage daemon's QMP socket,
# print each reply's "return" as JSON.
qmp () {
    "$PY" - "$RUN/qmp.sock" "$@" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
f = s.makefile("rw")
json.loads(f.readline())                       # greeting
def call(cmd):
    f.write(json.dumps(cmd) + "\n"); f.flush()
    while True:
        m = json.loads(f.readline())
        if "event" in m: continue
        if "error" in m: sys.exit("qmp: %s: %s" % (cmd["execute"], m["error"]["desc"]))
        return m["return"]
call({"execute": "qmp_capabilities"})
for a in sys.argv[2:]:
    print(json.dumps(call(json.loads(a))))
EOF
}
# job_state: "READY-FLAG REMAINING-BYTES" of the mirror job.
job_state () {
    qmp '{"execute": "query-block-jobs"}' | "$PY" -c '
import json, sys
j = [x for x in json.load(sys.stdin) if x["device"] == "m"][0]
print(int(j["ready"]), j["len"] - j["offset"])'
}
mirror_ready () { [ "$(job_state)" = "1 0" ]; }
no_jobs () { [ "$(qmp '{"execute": "query-block-jobs"}')" = "[]" ]; }
way_Q () {
    local iops rt s0 r0 t1 caught
    cp "$DISK" "$DATA/q-disk"
    truncate -s "$size_b" "$DATA/q.img"
    rm -f "$RUN/q-target.pid"
    ip netns exec "$NS" nbdkit -f -i "$NET.2" -p "$PORT" -P "$RUN/q-target.pid" \
        file "$DATA/q.img" 2>>"$RUN/q-target.log" &
    PID[qt]=$!
    wait_for 20 test -s "$RUN/q-target.pid" || die "Q: the NBD target did not start"
    rm -f "$RUN/q.sock" "$RUN/qmp.sock"
    qemu-storage-daemon \
        --blockdev driver=file,node-name=f,filename="$DATA/q-disk",cache.direct=off \
        --blockdev driver=raw,node-name=src,file=f \
        --nbd-server addr.type=unix,addr.path="$RUN/q.sock" \
        --export type=nbd,id=e,node-name=src,name=src,writable=on \
        --chardev socket,id=c,path="$RUN/qmp.sock",server=on,wait=off \
        --monitor chardev=c 2>>"$RUN/qsd.log" &
    PID[qsd]=$!
    wait_for 20 test -S "$RUN/qmp.sock" || die "Q: qemu-storage-daemon did not start"
    qmp '{"execute": "blockdev-add", "arguments": {"driver": "nbd", "node-name": "tgt", "server": {"type": "inet", "host": "'"$NET.2"'", "port": "'"$PORT"'"}}}' \
        '{"execute": "blockdev-mirror", "arguments": {"job-id": "m", "device": "src", "target": "tgt", "sync": "full", "copy-mode": "background"}}' >/dev/null \
        || die "Q: cannot start the mirror (see $RUN/qsd.log)"
    wait_for 300 mirror_ready || die "Q: the mirror did not become ready"
    s0=$(sent) r0=$(back)
    read -r iops rt < <(burst "nbd+unix:///src?socket=$RUN/q.sock")
    t1=$(now)
    wait_for 600 mirror_ready || die "Q: the mirror did not catch up after the burst"
    caught=$(sub "$(now)" "$t1")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" Q "$iops" "$(( $(sent) - s0 ))" "$caught" "$(( $(back) - r0 ))" >>"$RES"
    # Complete the job (the target becomes the copy), then compare.
    qmp '{"execute": "block-job-complete", "arguments": {"device": "m"}}' >/dev/null
    wait_for 30 no_jobs || die "Q: the mirror job did not complete"
    stop qsd; stop qt
    cmp -s "$DATA/q-disk" "$DATA/q.img" || die "Q: the target differs from the disk"
    rm -f "$DATA/q-disk" "$DATA/q.img"
}

way_A () {
    local iops rt
    cp "$DISK" "$DATA/a-disk"
    start_nbdkit a file "$DATA/a-disk"
    read -r iops rt < <(burst "$(uri a)")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" A "$iops" - - - >>"$RES"
    stop a
    rm -f "$DATA/a-disk"
}

RES=$RUN/res.tsv; : >"$RES"
for rep in $(seq 1 "$REPS"); do
    set -- $WAYS
    for i in $(seq 1 $(( (rep - 1) % $# ))); do set -- "${@:2}" "$1"; done
    for w in "$@"; do
        load=$(load1)
        "way_$w"
        tail -1 "$RES" | awk -v l="$load" -F'\t' '{printf "rep %s %s: %6d IOPS  sent %s bytes  caught up %s s after  (back %s)  load %s\n", $1, $2, $3, $4, $5, $6, l}'
    done
done

col () { awk -F'\t' -v c="$1" -v w="$2" '$2 == w {print $c}' "$RES"; }
ratio_paired () {               # ratio_paired WAY: median over reps of WAY/A IOPS
    awk -F'\t' -v w="$1" '$2 == "A" {a[$1] = $3} $2 == w {b[$1] = $3}
        END {for (r in b) if (a[r] > 0) print b[r] / a[r]}' "$RES" | median |
        awk '{printf "%.3f", $1}'
}
echo
echo "| way | writer IOPS (median) | IOPS vs A (paired) | sent / written | caught up after the burst (s) |"
echo "|---|---:|---:|---:|---:|"
for w in $WAYS; do
    iops=$(col 3 "$w" | median)
    if [ "$w" = A ]; then echo "| A bare nbdkit | $iops | 1 | - | - |"; continue; fi
    sentm=$(col 4 "$w" | median) cu=$(col 5 "$w" | median)
    name=$([ "$w" = B ] && echo "B livebackup (lb TLS -> lbd)" || echo "Q QEMU blockdev-mirror")
    echo "| $name | $iops | $(ratio_paired "$w") | $(div "$sentm" "$burst_b") | $cu |"
done
echo
echo "mirror-bench: sent = bytes on the veth toward the target (IP packets), from the burst's start until caught up; written = $burst_b bytes"
echo "mirror-bench: load at end $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${BENCH_PERF:-0}" = 1 ]; then
    echo
    echo "== CPU samples during the bursts, per program (perf report --sort comm)"
    for f in "$RUN"/perf-*.data; do
        echo "-- $(basename "$f" .data):"
        perf report -i "$f" --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
    done
fi
