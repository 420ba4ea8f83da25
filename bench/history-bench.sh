#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# history-bench.sh: what restore points cost lbd, through the whole
# pipeline (fio -> nbdkit + livewatch -> lb -> TLS -> lbd -> image).
#
#   bench/history-bench.sh            (from the build folder; root not needed)
#
# Two lbd configurations, interleaved rep by rep so that machine noise
# spreads over both: H0 without history=, H1 with history=minutely:100
# and a fresh point taken (test clock) just before each run, so that
# every block the run changes is first saved into the point's overlay
# (the worst case: nothing saved yet).  The image lives in BENCH_DIR
# (default: a folder under /var/tmp, disk-backed; on ext4 that is the
# overlay path, on XFS reflinks).  Per run: fio's write rate (writes
# never wait for lbd, so it should not move), how long lb then needs
# until the image is converged (where lbd's extra work shows), lbd's CPU
# seconds, and the bytes the point's overlay took per byte fio wrote
# (the copy amplification at 4 KiB granularity).  Medians of
# BENCH_REPS [5] reps of BENCH_SECONDS [5] s each, 4k random writes at
# QD32 and 1M sequential writes at QD8 over a BENCH_SIZE [256M] disk.
# Not part of make check.
set -u
export top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
. "$top_srcdir/tests/functions.sh"
REPS=${BENCH_REPS:-5} SECS=${BENCH_SECONDS:-5} SIZE=${BENCH_SIZE:-256M}
BD=$(mktemp -d "${BENCH_DIR:-/var/tmp}/history-bench.XXXXXX")
cleanup "rm -rf '$BD'"
port=$(free_port)
mkdir -p "$BD/c1"; make_key "$T/key"; cp "$T/key" "$BD/c1/key"
conf () {
    echo "client name=c1 file=$BD/c1/disk.img key=$BD/c1/key listen=127.0.0.1/$port $1" >"$T/lbd.conf"
}
export LIVEBACKUP_TEST_CLOCK=$T/clock
now=1796601600; echo $now >"$T/clock"
IMG=$BD/c1/disk.img
cpu_s () { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
truncate -s "$SIZE" "$T/disk"
start_nbdkit nbd "$T/disk"
conf ""
start_lbd lbd "$T/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1
wait_lb_converged "$IMG" 120 || bail "no first convergence"
# Fill the disk once, so that runs rewrite data (not holes).
fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$T/nbd.sock" --rw=write \
    --bs=1M --iodepth=8 --size="$SIZE" >/dev/null 2>&1
wait_lb_converged "$IMG" 300 || bail "no convergence after the fill"

restart_lbd () {
    local old; old=$(lbd_pid lbd); kill "$old"; wait "$old" 2>/dev/null
    conf "$1"; start_lbd lbd "$T/lbd.conf"
    wait_lb_converged "$IMG" 120
}
declare -A WL=([rand4k]="--rw=randwrite --bs=4k --iodepth=32 --norandommap --randrepeat=0"
               [seq1m]="--rw=write --bs=1M --iodepth=8")
echo "# rep workload cfg fio_MiB/s converge_s lbd_cpu_s overlay_bytes/written load" >"$T/runs.txt"
# Not in a pipeline: the lbd started inside would hold its pipe open.
for rep in $(seq "$REPS"); do
    for wl in rand4k seq1m; do
        for cfg in H0 H1; do
            [ $((rep % 2)) = 0 ] && cfg=$([ $cfg = H0 ] && echo H1 || echo H0)
            if [ $cfg = H1 ]; then restart_lbd history=minutely:100
                now=$((now + 60)); echo $now >"$T/clock"
                nbdsh -u "nbd+unix:///?socket=$T/nbd.sock" -c "h.pwrite(b'x' * 4096, 0); h.flush()"
                wait_lb_converged "$IMG" 60
                ov=$(ls -t "$IMG".point-*.cow 2>/dev/null | head -1)
                ov0=$(stat -c %s "$ov" 2>/dev/null || echo 0)
            else restart_lbd ""; fi
            c0=$(cpu_s "$(lbd_pid lbd)")
            # shellcheck disable=SC2086
            fio --name=$wl --ioengine=nbd --uri="nbd+unix:///?socket=$T/nbd.sock" ${WL[$wl]} \
                --time_based --runtime="$SECS" --output-format=json >"$T/fio.json" 2>/dev/null
            t0=$(date +%s.%N)
            wait_lb_converged "$IMG" 300
            t1=$(date +%s.%N)
            c1=$(cpu_s "$(lbd_pid lbd)")
            # (fio's nbd engine says "connected" on standard output first.)
            read -r bw written < <(python3 -c 'import json,sys; t=open(sys.argv[1]).read(); j=json.loads(t[t.index("{"):])["jobs"][0]["write"]; print(j["bw_bytes"]/1048576, j["io_bytes"])' "$T/fio.json")
            amp=-
            if [ $cfg = H1 ]; then
                amp=$(python3 -c "print('%.3f' % (($(stat -c %s "$ov") - $ov0) / $written))")
            fi
            printf '%s %s %s %.1f %.2f %.2f %s %s\n' "$rep" "$wl" "$cfg" "$bw" \
                "$(echo "$t1 - $t0" | bc)" "$(echo "$c1 - $c0" | bc)" "$amp" "$(cut -d' ' -f1 /proc/loadavg)"
        done
    done
done >>"$T/runs.txt"
cat "$T/runs.txt"
echo "# medians: workload cfg fio_MiB/s converge_s lbd_cpu_s overlay/written"
python3 - "$T/runs.txt" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if not l.startswith('#')]
for wl in ('rand4k', 'seq1m'):
    for cfg in ('H0', 'H1'):
        r = [x for x in rows if x[1] == wl and x[2] == cfg]
        med = lambda i: st.median(float(x[i]) for x in r)
        amp = st.median(float(x[6]) for x in r) if cfg == 'H1' else float('nan')
        print(wl, cfg, '%.1f %.2f %.2f %.3f' % (med(3), med(4), med(5), amp),
              'range conv %.2f-%.2f' % (min(float(x[4]) for x in r), max(float(x[4]) for x in r)))
PY
done_testing
