#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# livewatch-state=: a torn or corrupted state file is detected and
# logged, and never gives a silently wrong image.  Each case: lb stopped,
# some blocks written (the image lacks them: only the state file's map
# knows), nbdkit stopped cleanly, the file damaged, nbdkit and lb started
# again; the image must converge equal to the partition.
#  - one superblock copy damaged: the other serves (no full scan);
#  - a map page damaged, in the very bit of a block the image lacks: the
#    page's blocks are all compared (no full scan);
#  - both superblocks, a journal record, a truncated file, a geometry
#    changed: the capture starts over, with a full scan, and says why.
. "${top_srcdir:-.}/tests/functions.sh"
. "$top_srcdir/tests/state-functions.sh"
requires nbdkit; requires nbdsh; requires od

# flip FILE OFFSET MASK: XOR one byte of FILE.
flip () {
    local b
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $(( b ^ $3 )))" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# u64 FILE OFFSET: a little-endian 64-bit field.
u64 () { od -An -tu8 -j "$2" -N8 "$1" | tr -d ' '; }
nbd_says () { grep -q "$1" "$T/nbd.log"; }

state_setup 64M
MAP_OFF=$(u64 "$STATE" 80)      # superblock field: the map's offset
check "the superblock gives the map's offset ($MAP_OFF)" test "$MAP_OFF" -gt 8192

# case NAME EXPECT DAMAGE...: lb stopped, writes the image lacks, a clean
# stop, DAMAGE run, restart; EXPECT "continue" or "scan".
case_ () {
    local name=$1 expect=$2 scans0; shift 2
    kill "$LB_PID"; wait "$LB_PID" 2>/dev/null
    # Block 160 (10 MiB) among others: its bit is in the map's first page.
    nbdsh -u "$(uri nbd)" -c 'import os; h.pwrite(os.urandom(65536), 10 << 20); h.flush()'
    some_writes "$RANDOM" 30
    stop_nbdkit_clean
    : >"$T/nbd.log"
    "$@"
    scans0=$(nscans)
    serve
    lb_up
    if wait_lb_converged "$IMG" 40; then ok "$name: converges"
    else not_ok "$name: converges"; show_logs; fi
    check "$name: image equals the partition" same_image
    if [ "$expect" = continue ]; then
        check "$name: no full scan" test "$(nscans)" = "$scans0"
    else
        check "$name: a full scan" test "$(nscans)" = $((scans0 + 1))
    fi
}

case_ "superblock A flipped" continue flip "$STATE" 40 4
check "superblock A flipped: logged" nbd_says "superblock copy A is invalid"
case_ "superblock B flipped" continue flip "$STATE" $((4096 + 48)) 1
check "superblock B flipped: logged" nbd_says "superblock copy B is invalid"

# Block 160's bit: page header 24 bytes, then bit b of byte b/8.
case_ "map page bit of a dirty block flipped" continue \
    flip "$STATE" $((MAP_OFF + 24 + 160 / 8)) 1
check "map page flipped: logged" nbd_says "map page 0 is invalid (bad checksum)"
# 64 MiB of 4 KiB blocks: 16384 blocks, all in map page 0 (32576 bits).
check "map page flipped: its blocks compared ($(stat_of start_hinted))" \
    test "$(stat_of start_hinted)" = $(( (64 << 20) / $(stat_of block) ))

case_ "both superblocks flipped" scan \
    eval 'flip "$STATE" 40 4; flip "$STATE" $((4096 + 40)) 4'
check "both superblocks: logged" nbd_says "neither superblock copy is valid"
check "both superblocks: lb says why it scans" \
    grep -q "full scan: .*started fresh: neither superblock" "$T/lb.log"

case_ "journal record flipped" scan flip "$STATE" $((8192 + 512 + 30)) 2
check "journal record flipped: logged" nbd_says "cannot continue the stored capture: journal"

case_ "state file truncated" scan truncate -s 10000 "$STATE"
check "truncated: logged" nbd_says "the state file is truncated"
check "truncated: lb says why it scans" \
    grep -q "full scan: .*started fresh: the state file is truncated" "$T/lb.log"

case_ "state file emptied" scan truncate -s 0 "$STATE"
check "emptied: logged" grep -q "start_reason=the state file is empty" \
    <("$MIRROR" --stat --dir="$T" 1)

# Another geometry: the activity log's slots changed.
kill "$LB_PID"; wait "$LB_PID" 2>/dev/null
stop_nbdkit_clean
scans0=$(nscans)
serve livewatch-al-regions=512
lb_up
check "slots changed: converges" wait_lb_converged "$IMG" 40
check "slots changed: a full scan, with the reason" \
    test "$(nscans)" = $((scans0 + 1))
check "slots changed: logged" nbd_says "livewatch-al-regions changed from 1024 to 512"
check "slots changed: image equals the partition" same_image

done_testing
