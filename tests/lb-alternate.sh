#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# One unit, two backup servers in turn (a fail-over and back), and an
# image restored from an older copy.  Degraded writes take no record seq,
# so only the copy generation (lw_shm.h) tells an image that missed a
# catch-up from one that got it: such an image must be scanned, never
# continued; and an image that did get everything must still continue.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh

make_key "$T/key"
for s in 1 2; do
    port[$s]=$(free_port)
    mkdir -p "$T/srv$s/client1"
    cp "$T/key" "$T/srv$s/client1/key"
    cat >"$T/srv$s/lbd.conf" <<CONF
client file=client1/disk.img key=client1/key listen=127.0.0.1/${port[$s]} type=simple
CONF
done
IMG1=$T/srv1/client1/disk.img
IMG2=$T/srv2/client1/disk.img

truncate -s 64M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=16 seek=8 conv=notrunc status=none
start_nbdkit nbd "$T/disk"
start_lbd lbd1 "$T/srv1/lbd.conf"
start_lbd lbd2 "$T/srv2/lbd.conf"

# session NAME SERVER: lb to that server until it is live and the
# channel has converged, then stopped (SIGTERM).  Its log: $T/NAME.log.
session () {
    local name=$1 s=$2 img
    img=$T/srv$s/client1/disk.img
    start_lb "$name" "$T" "$T/disk" "${port[$s]}" "$T/key"
    # The image's state may already say live: wait for this lb to say so.
    wait_for 60 grep -q "live (image consistent)" "$T/$name.log" \
        && wait_lb_converged "$img" 60
    local r=$?
    kill "$(lb_pid "$name")"; wait "$(lb_pid "$name")" 2>/dev/null
    return $r
}
# scribble: writes while no lb runs (the filter only marks blocks).
# The filter degrades once its service thread sees lb gone (it looks
# every 100 ms); written before that, the writes would still be records
# in the ring, and the next lb would apply them, not copy blocks.
degraded () { "$MIRROR" --stat --dir="$T" 1 | grep -qx mode=degraded; }
scribble () {
    wait_for 10 degraded || { echo "# the filter did not degrade"; return 1; }
    nbdsh -u "$(uri nbd)" -c '
import os
for i in range(32): h.pwrite(os.urandom(65536), (i * 37 % 1000) * 65536)
h.flush()
'
}
scanned () { grep -q "full scan: $2" "$T/$1.log"; }
continued () { grep -q "continuing from seq" "$T/$1.log"; }

check "server 1: first contact converges" session a1 1
check "server 1 image equals the partition" same "$T/disk" "$IMG1"
check "server 2: first contact converges" session a2 2
check "server 2 image equals the partition" same "$T/disk" "$IMG2"
# Server 2's first scan read every block but spent no write's bit.
check "back to server 1 with nothing written: converges" session a3 1
check "back to server 1 with nothing written: it continues" continued a3
check "server 1 image equals the partition" same "$T/disk" "$IMG1"

# Written while no lb runs; the catch-up goes to server 2 only.
scribble
check "server 2 catches up" session a4 2
check "server 2 continued (it was current)" continued a4
check "server 2 image equals the partition" same "$T/disk" "$IMG2"

# Server 1 did not get those blocks and its seq alone cannot tell.
check "server 1 again converges" session a5 1
check "server 1 was scanned, not continued" \
    scanned a5 "blocks were copied to another image"
check "server 1 image equals the partition" same "$T/disk" "$IMG1"
check "lbd 1 calls the image consistent" \
    test "$(state_of "$IMG1" consistent)" = 1

# An older copy of server 2's image and state, put back after a catch-up.
cp --sparse=always "$IMG2" "$T/old.img"; cp "$IMG2.state" "$T/old.state"
check "the copy names a gen" grep -q "^gen=[0-9]" "$T/old.state"
scribble
check "server 2 catches up again" session a6 2
check "server 2 continued" continued a6
{ kill "$(lbd_pid lbd2)"; wait "$(lbd_pid lbd2)"; } 2>/dev/null
cp --sparse=always "$T/old.img" "$IMG2"; cp "$T/old.state" "$IMG2.state"
start_lbd lbd2 "$T/srv2/lbd.conf"
check "the restored old copy converges" session a7 2
check "the restored old copy was scanned" \
    scanned a7 "blocks were copied to another image"
check "server 2 image equals the partition" same "$T/disk" "$IMG2"

# A state file from before gens existed matches no gen: scanned.
sed -i '/^gen=/d' "$IMG1.state"
check "server 1, state without a gen, converges" session a8 1
check "a state without a gen is scanned" \
    scanned a8 "blocks were copied to another image"
check "server 1 image equals the partition" same "$T/disk" "$IMG1"

# Both lbds and lb killed at random points never leave a wrongly
# continued image: covered by lb-faults; here, lb killed right after the
# first SYNC carrying copies must not force the next session to scan.
scribble
start_lb a9 "$T" "$T/disk" "${port[1]}" "$T/key" -v
wait_for 30 grep -q "gen [1-9][0-9]* (catching-up)" "$T/a9.log"
kill -9 "$(lb_pid a9)"; wait "$(lb_pid a9)" 2>/dev/null
check "after lb was killed mid catch-up, server 1 converges" session a10 1
check "and continued" continued a10
check "server 1 image equals the partition" same "$T/disk" "$IMG1"

done_testing
