#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copy after the burst (doc/architecture.md): while writes go on, lb leaves the
# blocks the filter marks for later, so that catch-up does not compete
# with the writer; once the writes pause it copies them and goes live.
# And a writer that never pauses still gets its blocks copied: one pass
# per --defer seconds.  Progress is read from the unit's copy generation,
# which every sync carrying copied blocks moves on.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires fio

one_client

truncate -s 256M "$T/disk"
# A small queue: any burst overflows it and the filter degrades.
start_nbdkit nbd "$T/disk" livewatch-queue=256K
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key" --defer=60 -v
check "first contact converges" wait_lb_converged "$IMG" 60

# burst SECONDS: random writes as fast as they go, bounded in time.
burst () {
    timeout 120 fio --name=b --ioengine=nbd --uri="$(uri nbd)" \
        --rw=randwrite --bs=4k --size=128M --iodepth=8 --time_based \
        --runtime="$1" --output="$T/fio.log" >/dev/null 2>>"$T/fio.err" &
    BURST=$!
}
gen () { stat_of gen_acked; }
# above KEY N: the channel's KEY is more than N.
above () { [ "$(stat_of "$1")" -gt "$2" ]; }
lb_says () { "$LB" --status --dir="$T" 1 | grep -q "$1"; }
degrades0=$(stat_of degrades)
gen0=$(gen)

# --- lb with --defer=60: nothing is copied while the writes go on -------
burst 8
wait_for 10 above degrades "$degrades0"
check "the burst overflowed the queue: the filter degraded" \
    test "$(stat_of degrades)" -gt "$degrades0"
sleep 4
check "4 s into the burst: blocks are marked" test "$(stat_of dirty)" -gt 0
check "4 s into the burst: lb copied nothing yet (gen $(gen) = $gen0)" \
    test "$(gen)" = "$gen0"
check "and lb is waiting, not copying" test "$(stat_of pending)" = 0
check "lb --status says it is waiting for the writes to pause" \
    lb_says "deferring: 1"
wait "$BURST"
check "the burst ran to its end" test $? = 0
check "after the burst, lb catches up and is live" wait_lb_converged "$IMG" 60
check "image equals the partition" same "$T/disk" "$IMG"
check "the catch-up came after the burst (gen moved on)" \
    test "$(gen)" -gt "$gen0"
# (lb may take a moment to see the pause.)
check "lb --status: no longer deferring" \
    wait_for 5 lb_says "deferring: 0"

# --- --defer=1: a writer that never pauses still gets copies -------------
kill "$(lb_pid lb)"; wait "$(lb_pid lb)" 2>/dev/null
start_lb lb2 "$T" "$T/disk" "$port" "$T/key" --defer=1 -v
check "lb restarted with --defer=1 converges" \
    wait_for 60 grep -q "live (image consistent)" "$T/lb2.log"
gen1=$(gen)
burst 12
wait_for 30 above gen_acked "$gen1"
running=$(kill -0 "$BURST" 2>/dev/null && echo yes || echo no)
check "copies were made while the writer was still writing (gen $(gen) > $gen1)" \
    test "$(gen)" -gt "$gen1" -a "$running" = yes
wait "$BURST"
check "after it, lb is live" wait_lb_converged "$IMG" 60
check "image equals the partition" same "$T/disk" "$IMG"

done_testing
