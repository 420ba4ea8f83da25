#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The livewatch filter with the file plugin and the test mirror:
# parameters, the channel file, writes with no consumer, every kind of
# request (write, FUA, zero, trim, flush) reaching the mirror, and a
# mirror SIGKILLed and restarted continuing without a rescan.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh

# --- parameters -------------------------------------------------------
help=$(nbdkit --filter="$FILTER" null --help 2>&1)
for p in livewatch-unit livewatch-queue livewatch-block livewatch-dir; do
    check "--help lists $p" grep -q "^$p=" <<<"$help"
done
out=$(nbdkit --filter="$FILTER" null size=1M --run true 2>&1)
check "missing livewatch-unit is an error naming it" grep -q "livewatch-unit=N parameter is required" <<<"$out"
out=$(nbdkit --filter="$FILTER" null size=1M livewatch-unit=1 livewatch-dir="$T" livewatch-block=3000 --run true 2>&1)
check "a block size that is not a power of 2 is refused" grep -q "livewatch-block=3000: must be a power of 2" <<<"$out"
out=$(nbdkit --filter="$FILTER" null size=1M livewatch-unit=1 livewatch-dir="$T/nonexistent" --run true 2>&1)
check "an absent livewatch-dir is an error naming the file" grep -q "$T/nonexistent/livewatch-1: cannot create" <<<"$out"
# A livewatch-dir too small for the queue: refused at start, naming the
# channel, rather than nbdkit killed by SIGBUS at a later write.
mkdir "$T/small"
check "a 1 MiB tmpfs for it" mount -t tmpfs -o size=1M tmpfs "$T/small"
cleanup "umount $T/small"
out=$(nbdkit --filter="$FILTER" null size=1M livewatch-unit=1 livewatch-dir="$T/small" livewatch-queue=16M --run true 2>&1)
check "a channel that does not fit its folder is refused, naming it" grep -q "$T/small/livewatch-1: cannot reserve [0-9]* bytes for the channel (livewatch-queue= and the bitmaps): No space left on device" <<<"$out"
check "and leaves no channel file behind" test ! -e "$T/small/livewatch-1"
umount "$T/small"

# --- the channel ---------------------------------------------------------
truncate -s 64M "$T/disk"
start_nbdkit nbd "$T/disk"
check "channel file is mode 0600" test "$(stat -c %a "$T/livewatch-1")" = 600
out=$(nbdkit -U "$T/other.sock" --filter="$FILTER" file "$T/disk" livewatch-unit=1 livewatch-dir="$T" --run true 2>&1)
check "a second nbdkit on the same unit is refused" grep -q "is in use by another nbdkit" <<<"$out"
check "the first nbdkit still serves its channel" test "$(stat_of size)" = 67108864

# --- no consumer: writes succeed, bits are set ---------------------------
nbdsh -u "$(uri nbd)" -c '
h.pwrite(b"A" * 65536, 0)
h.pwrite(b"B" * 4096, 10 * 1048576)
h.flush()
' 
check "writes succeed with no consumer" test $? = 0
check "mode is degraded with no consumer" test "$(stat_of mode)" = degraded
check "the default block is 4 KiB" test "$(stat_of block)" = 4096
check "no consumer: blocks written are marked dirty (16 + 1 bits of 4 KiB)" test "$(stat_of dirty)" = 17
check "no consumer: nothing queued" test "$(stat_of records)" = 0

# --- a consumer arrives: full scan, then live ----------------------------
start_mirror "$T/disk" "$T/img"
check "mirror converges after its first scan" wait_converged 60
check "mirror equals the disk" same "$T/disk" "$T/img"
check "mirror log says why it scanned" grep -q "full scan: no state for the image" "$T/mirror.log"

# --- every kind of change, live --------------------------------------------
r0=$(stat_of records)
nbdsh -u "$(uri nbd)" -c '
import os
h.pwrite(os.urandom(1048576), 3 * 1048576)
h.pwrite(os.urandom(8192), 5000, nbd.CMD_FLAG_FUA)
h.zero(65536 * 3, 3 * 1048576 + 4096)
h.trim(131072, 1048576 * 20)
h.pwrite(b"\xff" * 131072, 1048576 * 20)
h.trim(65536, 1048576 * 20 + 32768)
h.flush()
h.pwrite(b"C" * 512, 64 * 1048576 - 512)
'
check "mirror converges after write/FUA/zero/trim/flush" wait_converged 30
check "mirror equals the disk after write/FUA/zero/trim/flush" same "$T/disk" "$T/img"
check "mode stayed normal" test "$(stat_of mode)" = normal
r1=$(stat_of records)
# 6 data records + FUA's flush + flush = 9 (trims become zeroes: same count)
check "each change was queued as a record ($((r1 - r0)) of 9)" test $((r1 - r0)) = 9

# --- SIGKILL the consumer, write, restart: no rescan -----------------------
{ kill -9 $MIRROR_PID; wait $MIRROR_PID; } 2>/dev/null
nbdsh -u "$(uri nbd)" -c '
import os
for i in range(50):
    h.pwrite(os.urandom(4096), i * 1048576 + 123)
h.flush()
'
mode_is () { [ "$(stat_of mode)" = "$1" ]; }
check "filter degraded once its consumer was gone" wait_for 5 mode_is degraded
check "filter counted the lost consumer" test "$(stat_of consumer_lost)" -ge 1
start_mirror "$T/disk" "$T/img"
check "restarted mirror converges" wait_converged 30
check "restarted mirror equals the disk" same "$T/disk" "$T/img"
check "restarted mirror continued from its durable seq (no rescan)" grep -q "continuing from seq" "$T/mirror.log"
check "exactly one full scan in the whole run" test "$(grep -c 'full scan' "$T/mirror.log")" = 1

done_testing
