#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# verify-bench.sh: what lb --verify costs, against the scan that does
# the same comparison (issue 11, "Online verify").
#
#   bench/verify-bench.sh [BUILDDIR]
#
# Not part of "make check".  A BENCH_SIZE device with BENCH_DATA of
# random data, mirrored by lb and lbd on loopback through
# tests/relay.py --count (wire bytes counted outside the programs).
# Then BENCH_REPS times, alternating which goes first:
#   scan    nbdkit restarted (a new capture epoch): lb's full scan of a
#           matching pair, from lb's "full scan:" line to "live (image
#           consistent)" in its log
#   verify  lb --verify of the same matching pair, from "verify pass N:
#           comparing" to "verify pass N done" in lb's log
# Figures: the medians of each, verify/scan per rep, wire bytes both
# ways per run (and per GiB compared), the load average.
#
# Environment: BENCH_SIZE [1G], BENCH_DATA in MiB [256], BENCH_REPS [3].
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
top_srcdir=$here top_builddir=${1:-$here}
. "$here/tests/functions.sh"
. "$here/bench/bench-lib.sh"
SIZE=${BENCH_SIZE:-1G} DATA=${BENCH_DATA:-256} REPS=${BENCH_REPS:-3}

one_client
truncate -s "$SIZE" "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count="$DATA" seek=8 conv=notrunc status=none
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_relay wire "$port"
start_lb lb "$T" "$T/disk" "$rport" "$T/key" --retry=1
wait_lb_converged "$IMG" 600 || bail "the first scan did not converge"
lb_live () { "$LB" --status --dir="$T" 1 >/dev/null; }
wait_for 60 lb_live || bail "lb not live"

# log_ms PATTERN: the time of day, in ms, of the last lb log line
# matching PATTERN (the lines start "HH:MM:SS.mmm").
log_ms () {
    grep -E "$1" "$T/lb.log" | tail -1 | awk '{split($1, t, "[:.]"); print ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000 + t[4]}'
}
wire_both () { awk '{print $1 + $2}' "$T/wire.count"; }

scanned_since () { tail -n +"$1" "$T/lb.log" | grep -q "full scan:"; }
run_scan () {
    local w0; w0=$(wire_up_now wire >/dev/null; wire_both)
    stop_nbdkit nbd
    start_nbdkit nbd "$T/disk"
    wait_for 600 scanned_since "$1" || bail "no scan"
    wait_lb_converged "$IMG" 600 || bail "scan did not converge"
    wait_for 60 lb_live || bail "lb not live"
    wire_up_now wire >/dev/null
    S_MS=$(( $(log_ms "live \(image consistent\)") - $(log_ms "full scan:") ))
    S_WIRE=$(( $(wire_both) - w0 ))
}
run_verify () {
    local w0; w0=$(wire_up_now wire >/dev/null; wire_both)
    "$LB" --verify --dir="$T" 1 >/dev/null || bail "verify did not match"
    wire_up_now wire >/dev/null
    V_MS=$(( $(log_ms "verify pass [0-9]+ done") - $(log_ms "verify pass [0-9]+: comparing") ))
    V_WIRE=$(( $(wire_both) - w0 ))
}

echo "| rep | first | scan s | verify s | verify/scan | scan wire bytes | verify wire bytes | load |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for rep in $(seq 1 "$REPS"); do
    line=$(( $(wc -l <"$T/lb.log") + 1 ))
    if [ $((rep % 2)) = 1 ]; then first=scan; run_scan "$line"; run_verify
    else first=verify; run_verify; run_scan "$line"; fi
    r=$(div "$V_MS" "$S_MS")
    echo "$V_MS" >>"$T/v"; echo "$S_MS" >>"$T/s"; echo "$r" >>"$T/r"
    echo "| $rep | $first | $(div "$S_MS" 1000) | $(div "$V_MS" 1000) | $r | $S_WIRE | $V_WIRE | $(load1) |"
done
echo
echo "medians: scan $(div "$(median <"$T/s")" 1000) s, verify $(div "$(median <"$T/v")" 1000) s, verify/scan $(median <"$T/r") (size $SIZE, $DATA MiB of data)"
