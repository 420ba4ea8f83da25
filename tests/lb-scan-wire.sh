#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The scan's two-level compare (issue 11, "hierarchical, fast scan"),
# wire bytes counted by a relay, outside lb and lbd:
# - a scan of a partition that the image already equals costs at most
#   0.01 % of its size on the wire, both ways, and a fixed allowance;
# - 4 KiB differences in several 4 MiB regions (two in one) bring only
#   those blocks (--hash-block=4K) and the second level's hashes;
# - a HELLO of another protocol version is refused with ERROR code 2,
#   and lbd's log names both versions.
# (A scan cut and resumed: tests/lb-scan-resume.sh, lb and lbd killed.)
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"
PEER=$top_builddir/tests/lb-peer

SIZE=$((256 << 20))
one_client
# 192 MiB of random data and 64 MiB of zeroes; the image a copy of it,
# put in place by hand, so that lbd knows nothing of it: a full scan.
truncate -s $SIZE "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=192 conv=notrunc status=none
cp --sparse=always "$T/disk" "$IMG"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_relay wire "$port"

start_lb lb1 "$T" "$T/disk" "$rport" "$T/key" -v
check "the scan of an unchanged partition converges" wait_lb_converged "$IMG" 60
check "it was a full scan" grep -q "full scan" "$T/lb1.log"
check "image equals the partition" same "$T/disk" "$IMG"
stop_lb lb1
read -r up down _ < <(wire_up wire >/dev/null; cat "$T/wire.count")
# 0.01 % of 256 MiB is 26844 bytes; the fixed part (TLS handshake,
# HELLO, WELCOME, the syncs of the phases, BYE) gets 16 KiB.
bound=$((SIZE / 10000 + 16384))
diag "unchanged: $up bytes up, $down down (bound $bound both together)"
check "wire: at most 0.01 % of the size + 16 KiB, both ways" \
    test $((up + down)) -le $bound
check "lb says it found everything the same" \
    grep -q "scan sweep done" "$T/lb1.log"

# Scattered differences, with lbd stopped: 4 KiB of the image changed
# at offsets in five regions (two in the last data region), then its
# state is made to match no capture, so that the next lb scans.
{ kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"; } 2>/dev/null
offs="0 $(( (5 << 20) + 8192 )) $(( (77 << 20) + 4096 )) $(( (191 << 20) ))
      $(( (191 << 20) + (1 << 20) - 4096 )) $(( SIZE - 4096 ))"
n=0
for o in $offs; do
    dd if=/dev/urandom of="$IMG" bs=4096 count=1 seek=$((o / 4096)) \
        conv=notrunc status=none
    n=$((n + 1))
done
check "the image differs from the partition" sh -c "! cmp -s '$T/disk' '$IMG'"
sed -i 's/^epoch=.*/epoch=0000000000000001/' "$IMG.state"
start_lbd lbd "$T/srv/lbd.conf"
start_relay wire2 "$port"
start_lb lb2 "$T" "$T/disk" "$rport" "$T/key" -v --hash-block=4K
check "the scan with $n blocks changed converges" wait_lb_converged "$IMG" 60
check "image equals the partition again" same "$T/disk" "$IMG"
stop_lb lb2
read -r up down _ < <(wire_up wire2 >/dev/null; cat "$T/wire2.count")
# Up: the blocks (random, so raw) and their headers; down: 1024
# hashes of 16 bytes for each of the five regions that differ, and for
# the region asked after each (block by block at once: lb/sink.h),
# beside the unchanged scan's.
upb=$(( n * (4096 + 64) + SIZE / 10000 + 16384 ))
downb=$(( 2 * 5 * 1024 * 16 + 8192 + SIZE / 10000 + 16384 ))
diag "scattered: $up bytes up (bound $upb), $down down (bound $downb)"
check "wire up: the $n blocks' bytes and a bounded rest" test "$up" -le "$upb"
check "wire up: at least the $n blocks' bytes" test "$up" -ge $((n * 4096))
check "wire down: the second level's hashes and a bounded rest" \
    test "$down" -le "$downb"

# Another protocol version: refused, saying which.
for v in 3 2 5; do
    check "a HELLO of version $v is refused with ERROR code 2" \
        sh -c "'$PEER' version=$v 127.0.0.1 $port '$T/key' client1 $SIZE >>'$T/peer.log'"
done
check "lb-peer read lbd's reason" \
    grep -q "refused: protocol version 3 not supported: this lbd speaks version 4" "$T/peer.log"
check "lbd logged the refused version" \
    grep -q "protocol version 5 not supported: this lbd speaks version 4" "$T/lbd.log"
check "the image is untouched by the refused peers" same "$T/disk" "$IMG"
check "lbd is still running" kill -0 "$(lbd_pid lbd)"

done_testing
