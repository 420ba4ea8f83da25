#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# livewatch-state=: a power cut of the protected machine, simulated 10
# times at random instants of a burst of writes from 4 connections: nbdkit
# frozen (SIGSTOP), the partition and the state file copied at that
# instant (cp --reflink=never), nbdkit killed, both files put back as
# copied, nbdkit started on them.  lb and lbd live on (lbd is the other
# machine); the image converges equal to the partition as it was at the
# cut, with no full scan.
#
# What the page cache held at the cut is in the copies: this does not
# lose the writes a real power cut loses (the device's unflushed ones,
# the state file's writes after its last fdatasync).  tests/test-crash
# covers those, against every crash state of both.
. "${top_srcdir:-.}/tests/functions.sh"
. "$top_srcdir/tests/state-functions.sh"
requires nbdkit; requires fio; requires nbdsh

writes_above () { [ "$(stat_of writes)" -gt "$1" ]; }
state_setup 128M

for round in $(seq 1 10); do
    scans0=$(nscans) cont0=$(ncontinue) gone0=$(grep -c 'went away' "$T/lb.log")
    w0=$(stat_of writes)
    writers 4 64M
    wait_for 10 writes_above $((w0 + 100))
    sleep "0.$(( RANDOM % 10 ))$(( RANDOM % 10 ))"
    kill -STOP "$NBDKIT_PID"
    cp --reflink=never "$T/disk" "$T/disk.cut"
    cp --reflink=never "$STATE" "$T/state.cut"
    kill9_nbdkit
    kill_writers
    # Put back the instant of the cut, in place: lb holds DEVICE open.
    cp --reflink=never "$T/disk.cut" "$T/disk"
    cp --reflink=never "$T/state.cut" "$STATE"
    wait_for 10 lb_noticed $((gone0 + 1))
    serve
    what="power cut $round"
    if wait_lb_converged "$IMG" 40; then ok "$what: converges"
    else not_ok "$what: converges"; show_logs; fi
    check "$what: image equals the partition as it was at the cut" \
        same "$T/disk.cut" "$IMG"
    check "$what: the capture continued (start=$(stat_of start), $(stat_of recovered_regions) regions compared)" \
        test "$(stat_of start)" = recovered
    check "$what: no full scan" \
        test "$(nscans)" = "$scans0" -a "$(ncontinue)" -gt "$cont0"
done

# And the machine goes on: writes are followed as before.
check "after the cuts: writes" some_writes 99 100
check "after the cuts: converges" wait_lb_converged "$IMG" 30
check "after the cuts: image equals the partition" same_image
check "full scans in all: 1 (first contact)" test "$(nscans)" = 1

done_testing
