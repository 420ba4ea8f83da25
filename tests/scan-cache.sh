#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lbd's region hashes kept between sessions (lbd/scancache.h): a scan
# after nbdkit restarts (a new capture epoch: a full scan) is answered
# from them where nothing changed the image, and never where something
# did:
# - an unchanged image: every region answered from them, none read;
# - the image changed behind lbd's back between sessions (as an
#   operator's copy put back would): everything read again, and the
#   change found and repaired;
# - a region lbd itself wrote, then the partition put back to what the
#   kept hash was of, behind the filter's back: that region read again
#   (a kept hash would hide the difference), as is every region lbd
#   copied into, and the others answered;
# - lbd restarted: nothing kept;
# - lb --verify (4 MiB hash blocks, so its requests look like a scan's)
#   is never answered from them: damage behind lbd's back is found.
# Every scan ends with the image equal to the partition.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh

SIZE=$((64 << 20))              # 16 regions of 4 MiB (lb/sink.h)
one_client
truncate -s $SIZE "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=64 conv=notrunc status=none
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"

# scan NAME: restart nbdkit (a new epoch), then lb until converged.
scan () {
    stop_nbdkit nbd
    start_nbdkit nbd "$T/disk"
    start_lb "$1" "$T" "$T/disk" "$port" "$T/key"
    wait_lb_converged "$IMG" 60 && grep -q "full scan" "$T/$1.log"
    local r=$?
    stop_lb "$1"
    return $r
}
# kept N: lbd's last session line says N regions were answered from the
# hashes kept (0: no such line since MARK, lbd's log length before).
since_mark () { tail -n +"$((MARK + 1))" "$T/lbd.log" | grep -q "$1"; }
kept () {
    local line
    # lbd says it when the session has ended (after lb's goodbye).
    if [ "$1" = 0 ]; then wait_for 10 since_mark "said goodbye"; sleep 1
    else wait_for 10 since_mark "region hashes kept from before"; fi
    line=$(tail -n +"$((MARK + 1))" "$T/lbd.log" | grep "region hashes kept from before" | tail -1)
    diag "${line:-no region hashes kept}"
    if [ "$1" = 0 ]; then [ -z "$line" ]; else grep -q "scan: $1 region hashes kept from before, $2 read" <<<"$line"; fi
}
mark () { MARK=$(wc -l <"$T/lbd.log"); }

start_lb lb0 "$T" "$T/disk" "$port" "$T/key"
check "first contact converges" wait_lb_converged "$IMG" 60
stop_lb lb0
check "... image equals the partition" same "$T/disk" "$IMG"

# First contact copied every region: lbd's writes forgot their hashes.
mark
check "a full scan of the unchanged image converges" scan lb1
check "... every region read (first contact wrote them all)" kept 0
mark
check "another full scan converges" scan lb1b
check "... every region answered from the kept hashes" kept 16 0
check "... image equals the partition" same "$T/disk" "$IMG"

# Behind lbd's back, between sessions: 4 KiB of region 5 changed.
head -c 4096 /dev/urandom | dd of="$IMG" bs=4096 seek=$(( (20 << 20) / 4096 )) conv=notrunc status=none
check "the image now differs from the partition" sh -c "! cmp -s '$T/disk' '$IMG'"
mark
check "the next scan converges" scan lb2
check "... none answered from the kept hashes (the file changed)" kept 0
check "... the change found: image equals the partition" same "$T/disk" "$IMG"

# lbd writes region 9 (live); then the partition gets region 9's old
# bytes back without the filter seeing it, so that the device holds
# what the kept hash was of.
dd if="$T/disk" of="$T/old9" bs=1M skip=36 count=1 status=none
start_lb lb3 "$T" "$T/disk" "$port" "$T/key"
check "lb live again" wait_lb_converged "$IMG" 60
nbdsh -u "$(uri nbd)" -c '
import os
h.pwrite(os.urandom(1 << 20), 36 << 20)
h.flush()
'
check "a write to region 9 reaches the image" wait_lb_converged "$IMG" 60
check "... image equals the partition" same "$T/disk" "$IMG"
stop_lb lb3
dd if="$T/old9" of="$T/disk" bs=1M seek=36 conv=notrunc status=none
check "the partition now differs from the image, in region 9" sh -c "! cmp -s '$T/disk' '$IMG'"
mark
check "the next scan converges" scan lb4
# Region 5 too: lb2's copy into it forgot its hash again.
check "... 14 regions answered from the kept hashes; 5 and 9 read" kept 14 2
check "... region 9 copied: image equals the partition" same "$T/disk" "$IMG"

# Kept in lbd's memory only.
{ kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"; } 2>/dev/null
start_lbd lbd "$T/srv/lbd.conf"
mark
check "after lbd restarts, a scan converges" scan lb5
check "... none answered from kept hashes" kept 0
check "... image equals the partition" same "$T/disk" "$IMG"

# lb --verify reads the image, never the kept hashes: with 4 MiB hash
# blocks its requests look like a scan's, region by region.
start_lb lb6 "$T" "$T/disk" "$port" "$T/key" --hash-block=4M
check "lb with --hash-block=4M live" wait_lb_converged "$IMG" 60
head -c 4096 /dev/urandom | dd of="$IMG" bs=4096 seek=$(( (44 << 20) / 4096 )) conv=notrunc status=none
"$LB" --verify --json --dir="$T" 1 >"$T/verify.out" 2>"$T/verify.err"; rc=$?
diag "verify: exit $rc: $(head -c 300 "$T/verify.out")"
check "a verify finds the damage made behind lbd's back (exit 1)" test "$rc" = 1
check "... in region 11, repaired" /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["mismatched_blocks"] >= 1 and d["repaired_blocks"] == d["mismatched_blocks"], d
assert all(44 << 20 <= r["offset"] < 48 << 20 for r in d["ranges"]), d["ranges"]
' "$T/verify.out"
check "... image equals the partition" same "$T/disk" "$IMG"
stop_lb lb6
done_testing
