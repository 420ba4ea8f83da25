#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Zeroes travel as lengths and become holes (issue 11, "zeroes"): a zero
# request, a trim, a write of zeroes, a write with zero pieces in it,
# live and through a catch-up, each cost next to nothing on the wire
# (counted by a relay) and give back the image's allocated blocks
# (stat %b), and the image stays identical to the partition.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires fallocate
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"

one_client
truncate -s 1M "$T/srv/probe"
fallocate -p -o 0 -l 4096 "$T/srv/probe" 2>/dev/null ||
    skip "the file system under $T cannot punch holes"

# 48 MiB of random data in a 64 MiB partition, a 256 KiB ring.
truncate -s 64M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=48 conv=notrunc status=none
start_nbdkit nbd "$T/disk" livewatch-queue=256K
start_lbd lbd "$T/srv/lbd.conf"
start_relay wire "$port"
start_lb lb1 "$T" "$T/disk" "$rport" "$T/key" -v
check "first contact converges" wait_lb_converged "$IMG" 60
check "image equals the partition" same "$T/disk" "$IMG"
alloc () { stat -c %b "$IMG"; }     # 512-byte units
a0=$(alloc) w0=$(wire_up_now wire)
diag "image allocated: $((a0 / 2048)) MiB"

# Live: each kind of zeroing, 4 + 4 + 4 + 2 MiB of holes.
nbdsh -u "$(uri nbd)" -c '
h.zero(4 << 20, 0)                          # ZERO record
h.trim(4 << 20, 8 << 20)                    # TRIM: the device reads zeroes
h.pwrite(bytes(4 << 20), 16 << 20)          # a WRITE of zeroes
import os
mixed = b"".join(bytes(65536) if i % 2 else os.urandom(65536)
                 for i in range(64))
h.pwrite(mixed, 24 << 20)                   # 2 MiB of data, 2 MiB of zeroes
h.flush()
'
check "live zeroes converge" wait_lb_converged "$IMG" 30
check "image equals the partition after live zeroes" same "$T/disk" "$IMG"
a1=$(alloc) w1=$(wire_up_now wire)
diag "image allocated: $((a1 / 2048)) MiB; wire: $((w1 - w0)) bytes"
check "the image gave back at least 13 of the 14 MiB zeroed" \
    test $((a0 - a1)) -ge $((13 << 11))
check "wire: the 2 MiB of data, the 12 MiB of zeroes nearly free (< 2 MiB + 256 KiB)" \
    test $((w1 - w0)) -lt $(( (2 << 20) + (256 << 10) ))

# Catch-up: lb away, the ring overflows into the bitmap, then 8 MiB
# zeroed; the blocks are copied as zero-encoded BLOCKs.
stop_lb lb1
w1=$(wire_up wire)
nbdsh -u "$(uri nbd)" -c '
import os
h.pwrite(os.urandom(1 << 20), 60 << 20)     # overflows the ring
h.zero(4 << 20, 32 << 20)
h.trim(4 << 20, 40 << 20)
h.flush()
'
check "the filter degraded" sh -c "'$MIRROR' --stat --dir='$T' 1 | grep -q '^mode=degraded'"
start_lb lb2 "$T" "$T/disk" "$rport" "$T/key" -v
check "the catch-up converges" wait_lb_converged "$IMG" 60
check "image equals the partition after the catch-up" same "$T/disk" "$IMG"
check "the catch-up continued (no scan)" grep -q "continuing from seq" "$T/lb2.log"
stop_lb lb2
a2=$(alloc) w2=$(wire_up wire)
diag "image allocated: $((a2 / 2048)) MiB; wire: $((w2 - w1)) bytes"
check "the catch-up gave back at least 7 of the 8 MiB zeroed" \
    test $((a1 - a2)) -ge $((7 << 11))
check "wire: the 1 MiB written, the 8 MiB of zeroes nearly free (< 1 MiB + 256 KiB)" \
    test $((w2 - w1)) -lt $(( (1 << 20) + (256 << 10) ))

done_testing
