#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A 4 KiB write made while lb is away costs about 4 KiB on the wire at
# catch-up (issue 11, "change-map granularity"): random 4 KiB writes that
# overflow a small ring into the dirty bitmap, then lb continues; the
# bytes lb sends are counted by a relay, outside lb and lbd.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"

one_client

truncate -s 64M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=64 conv=notrunc status=none
# A 256 KiB ring: the writes below overflow it into the bitmap.
start_nbdkit nbd "$T/disk" livewatch-queue=256K
start_lbd lbd "$T/srv/lbd.conf"
start_relay wire "$port"
start_lb lb1 "$T" "$T/disk" "$rport" "$T/key"
check "first contact converges" wait_lb_converged "$IMG" 60
stop_lb lb1
before=$(wire_up wire)

# 1024 writes of 4 KiB of random data at random 4 KiB-aligned places
# (some repeat): the dirty bytes are the distinct blocks written.
dirty=$(nbdsh -u "$(uri nbd)" -c '
import os, random
rnd = random.Random(11)
seen = set()
for i in range(1024):
    b = rnd.randrange(64 * 256)
    seen.add(b)
    h.pwrite(os.urandom(4096), b * 4096)
h.flush()
print(len(seen) * 4096)
')
diag "dirty bytes: $dirty"
check "the writes overflowed the ring (the filter degraded)" \
    sh -c "'$MIRROR' --stat --dir='$T' 1 | grep -q '^mode=degraded'"

start_lb lb2 "$T" "$T/disk" "$rport" "$T/key"
check "lb continues (no scan)" logged 20 "$T/lb2.log" "continuing from seq"
check "the catch-up converges" wait_lb_converged "$IMG" 60
check "image equals the partition" same "$T/disk" "$IMG"
stop_lb lb2
sent=$(( $(wire_up wire) - before ))
# Per catch-up: the handshake, HELLO/WELCOME, syncs and BYE, a few KiB;
# 64 KiB allows for them.  Each 4 KiB block travels with at most a
# message header and TLS record overhead.
limit=$(( dirty * 13 / 10 + 65536 ))
diag "catch-up sent $sent bytes for $dirty dirty bytes ($(( sent * 100 / dirty ))%), limit $limit"
check "catch-up bytes <= 1.3 x dirty bytes + 64 KiB" test "$sent" -le "$limit"
check "and at least the dirty bytes (random data does not shrink)" \
    test "$sent" -ge "$dirty"

done_testing
