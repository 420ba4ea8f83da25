#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# livewatch-state=: nbdkit restarted under lb and lbd, and lb continues
# with a catch-up of what was being written, never a full scan.
#  - 5 clean restarts (SIGTERM) right after bursts of writes that lb,
#    frozen meanwhile (SIGSTOP), did not take: the clean stop puts the
#    blocks of the records still in the ring into the map;
#  - 20 SIGKILLs of nbdkit in the middle of writes from 4 connections
#    (fio): only the regions that were active are compared.
# Each round: the image converges equal to the partition, without a full
# scan, and what lb read from the device (its own count, checked against
# /proc/PID/io rchar: the partition sits in the page cache, so
# read_bytes would stay near zero) is what the filter said was to copy or
# compare, far below the partition's size.
. "${top_srcdir:-.}/tests/functions.sh"
. "$top_srcdir/tests/state-functions.sh"
requires nbdkit; requires nbdsh; requires fio
[ -r /proc/self/io ] || skip "no /proc/PID/io"

SIZE=$((256 << 20))
BLOCK=4096              # the default livewatch-block
SLACK=$((1 << 20))      # rchar beyond the device: lbd's replies, /etc files
writes_above () { [ "$(stat_of writes)" -gt "$1" ]; }
state_setup 256M
check "first contact: one full scan" test "$(nscans)" = 1
check "first contact: lb read the partition once (its count: $(lb_device_bytes))" \
    test "$(lb_device_bytes)" -ge "$SIZE"

# --- clean restarts ---------------------------------------------------------
for round in 1 2 3 4 5; do
    scans0=$(nscans) cont0=$(ncontinue) gone0=$(grep -c 'went away' "$T/lb.log")
    kill -STOP "$LB_PID"
    some_writes "$round" 200
    stop_nbdkit_clean
    kill -CONT "$LB_PID"
    wait_for 10 lb_noticed $((gone0 + 1))
    r0=$(lb_rchar) c0=$(lb_device_bytes) l0=$(lines)
    serve
    what="clean restart $round"
    [ "$round" = 1 ] && check "the channel's block is $BLOCK" test "$(stat_of block)" = "$BLOCK"
    if wait_lb_converged "$IMG" 30; then ok "$what: converges"
    else not_ok "$what: converges"; show_logs; fi
    check "$what: image equals the partition" same_image
    check "$what: the filter continued the capture (start=$(stat_of start))" \
        test "$(stat_of start)" = clean
    check "$what: lb --status says how the capture began" \
        sh -c '"$1" --status --dir="$2" 1 | grep -q "^  capture: continued after a clean stop of nbdkit"' - "$LB" "$T"
    check "$what: no full scan (continued)" \
        test "$(nscans)" = "$scans0" -a "$(ncontinue)" -gt "$cont0"
    wait_for 5 pass_since "$l0"
    r1=$(lb_rchar) c1=$(lb_device_bytes)
    dirty=$(stat_of start_dirty)
    diag "$what: $dirty blocks to copy; lb read $((c1 - c0)) bytes of the device (rchar +$((r1 - r0)))"
    check "$what: the records lb had not taken are to copy (1 to 3200 blocks: 200 writes of up to 16 blocks)" \
        test "$dirty" -gt 0 -a "$dirty" -le 3200
    check "$what: lb read what was to copy (<= $dirty blocks)" \
        test $((c1 - c0)) -le $((dirty * BLOCK))
    check "$what: lb's count agrees with rchar" \
        test $((r1 - r0)) -ge $((c1 - c0)) -a $((r1 - r0 - (c1 - c0))) -le "$SLACK"
done

# --- SIGKILL during writes from 4 connections ------------------------------
for round in $(seq 1 20); do
    scans0=$(nscans) cont0=$(ncontinue) gone0=$(grep -c 'went away' "$T/lb.log")
    w0=$(stat_of writes)
    writers 3
    wait_for 10 writes_above $((w0 + 200))
    sleep "0.$(( RANDOM % 8 ))"
    kill9_nbdkit
    kill_writers
    wait_for 10 lb_noticed $((gone0 + 1))
    r0=$(lb_rchar)
    serve
    what="SIGKILL $round"
    if wait_lb_converged "$IMG" 30; then ok "$what: converges"
    else not_ok "$what: converges"; show_logs; fi
    r1=$(lb_rchar)
    check "$what: image equals the partition" same_image
    check "$what: no full scan" \
        test "$(nscans)" = "$scans0" -a "$(ncontinue)" -gt "$cont0"
    regions=$(stat_of recovered_regions) rsize=$(stat_of region_size)
    dirty=$(stat_of start_dirty) hinted=$(stat_of start_hinted)
    read=$((r1 - r0)) active=$((regions * rsize))
    diag "$what: $regions regions active ($active bytes, $hinted blocks compared, $((dirty - hinted)) more copied); lb read $read bytes"
    check "$what: recovered (start=$(stat_of start)), some region active" \
        test "$(stat_of start)" = recovered -a "$regions" -gt 0
    check "$what: lb --status says how the capture began" \
        sh -c '"$1" --status --dir="$2" 1 | grep -q "^  capture: continued after an unclean stop of nbdkit"' - "$LB" "$T"
    check "$what: lb read no more than the active regions and the map" \
        test "$read" -le $((active + (dirty - hinted) * BLOCK + SLACK))
    check "$what: ...far below the partition's size" \
        test "$read" -le $((SIZE / 4))
done

# lb's count, all along, against the kernel's.
total=$(lb_rchar)
kill "$LB_PID"; wait "$LB_PID" 2>/dev/null; LB_PID=
count=$(sed -n 's/.*at exit: \([0-9]*\) bytes read from the device in all/\1/p' "$T/lb.log")
diag "lb read $count bytes of the device in all, rchar $total"
check "lb logged its count at exit" test -n "$count"
check "lb's count at exit agrees with rchar" \
    test "$total" -ge "${count:-0}" -a $((total - ${count:-0})) -le $((4 * SLACK))
check "full scans in all: 1 (first contact)" test "$(nscans)" = 1

done_testing
