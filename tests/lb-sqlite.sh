#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Live mode under an fsync-heavy writer (issue 11): SQLite in WAL mode,
# synchronous=FULL, on ext4 through the filter (nbdfuse, loop device),
# committing numbered transactions, one row each; every commit's fsync is
# a FLUSH, so a SYNC, and lb pipelines them while lbd group-commits.
#  (a) Copies of the image taken while lbd is frozen (SIGSTOP) and its
#      state says live: each mounts (the journal replayed, as after a
#      power cut), its database passes PRAGMA integrity_check and holds
#      exactly transactions 1 .. N, N no more than the writer had begun,
#      and no less than in the copy before.
#  (b) lbd SIGKILLed three times while the writer runs: each time the
#      seq its state file names durable is at least every seq lb was told
#      synced and every seq the ring released; restarted, lbd converges
#      to an image identical to the partition whose database holds every
#      transaction.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdfuse; requires mkfs.ext4; requires fusermount
requires_root
[ -c /dev/fuse ] || skip "no /dev/fuse"
losetup -f >/dev/null 2>&1 || skip "no free loop device"
/usr/bin/python3 -c 'import sqlite3' 2>/dev/null || skip "python3 has no sqlite3"
TXN="/usr/bin/python3 $top_srcdir/tests/sqlite-txn.py"

. "${top_srcdir:-.}/tests/fs-functions.sh"
one_client
M=$T/mnt

truncate -s 256M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf" -v
start_lb lb "$T" "$T/disk" "$port" "$T/key" -v
check "first contact converges" wait_lb_converged "$IMG" 60
check "ext4 made and mounted through nbdfuse and a loop device" mount_fs mkfs

# db_of IMAGE DIR: the database in a copy of the image, its journal
# replayed by mounting it, copied out to DIR (with its WAL); "ok N" from
# the checker in DIR/check.
db_of () {
    mkdir -p "$2"
    mount -o loop "$1" "$T/chk" >"$2/mount.log" 2>&1 || { sed 's/^/#   /' "$2/mount.log"; return 1; }
    cp "$T/chk"/db "$T/chk"/db-wal "$2/" 2>/dev/null
    umount "$T/chk" || return 1
    [ -f "$2/db" ] || { echo "ok 0" >"$2/check"; return 0; }
    $TXN check "$2/db" >"$2/check" 2>&1 || { sed 's/^/#   /' "$2/check"; return 1; }
}
rows () { sed -n 's/^ok //p' "$1/check"; }

# --- (a) live copies, lbd frozen ------------------------------------------
$TXN write "$M/db" "$T/progress" 12 >"$T/writer1.out" 2>&1 &
wpid=$!
cleanup "kill $wpid 2>/dev/null"
lbdpid=$(lbd_pid lbd)
wait_for 20 test -s "$T/progress"
live=0
for round in 1 2 3 4 5 6; do
    sleep 1.5
    kill -STOP "$lbdpid"
    ph=$(state_of "$IMG" phase); cs=$(state_of "$IMG" consistent)
    if [ "$ph" = live ] && [ "$cs" = 1 ]; then
        cp --sparse=always "$IMG" "$T/copy$round"
        # Read after the copy: it holds no transaction past the one the
        # writer began after this.
        begun=$(( $(tr -dc 0-9 <"$T/progress") + 1 ))
        echo "$begun" >"$T/copy$round.begun"
        live=$((live + 1))
    else
        diag "round $round: lbd's state says phase=$ph consistent=$cs; not counted"
    fi
    kill -CONT "$lbdpid"
done
wait "$wpid"; wr=$?
check "the writer ran to its end ($(cat "$T/writer1.out") transactions)" test "$wr" = 0
check "at least 4 of 6 copies taken while live ($live)" test "$live" -ge 4
prev=0
for c in "$T"/copy[0-9]; do
    [ -f "$c" ] || continue
    n=$(basename "$c")
    if db_of "$c" "$T/$n.db"; then
        r=$(rows "$T/$n.db"); b=$(cat "$c.begun")
        ok "$n: mounts, integrity_check ok, transactions 1 .. $r with no gap"
        check "$n: no transaction the writer had not begun ($r <= $b)" test "$r" -le "$b"
        check "$n: none lost since the copy before ($r >= $prev)" test "$r" -ge "$prev"
        prev=$r
    else
        not_ok "$n: mounts, integrity_check ok, a gap-free prefix"
    fi
    rm -rf "$c" "$T/$n.db"
done
grep -Eo '[0-9]+ SYNCs in one commit' "$T/lbd.log" | sort -n | tail -1 |
    sed 's/^/# largest group: /'

# --- (b) lbd killed under the writer ---------------------------------------
# synced_max: the newest seq lb logged as synced (lb_sink_synced).
synced_max () { sed -n 's/.*synced up to seq \([0-9]*\),.*/\1/p' "$T/lb.log" | sort -n | tail -1; }
ended () { grep -c "connection to .* ended" "$T/lb.log"; }
$TXN write "$M/db" "$T/progress" 12 >"$T/writer2.out" 2>&1 &
wpid=$!
cleanup "kill $wpid 2>/dev/null"
for round in 1 2 3; do
    sleep 2
    e0=$(ended)
    kill -9 "$(lbd_pid lbd)"
    wait "$(lbd_pid lbd)" 2>/dev/null
    # Once lb has seen the end, it can learn of no sync any more.
    wait_for 30 sh -c "[ \$(grep -c 'connection to .* ended' '$T/lb.log') -gt $e0 ]"
    durable=$(state_of "$IMG" seq); told=$(synced_max)
    released=$(stat_of tail_seq)
    check "kill $round: lb was told no more than is durable (synced $told <= $durable)" \
        test "${told:-0}" -le "$durable"
    check "kill $round: the ring released no more (released $released <= $durable)" \
        test "$released" -le "$durable"
    start_lbd lbd "$T/srv/lbd.conf" -v
done
wait "$wpid"; wr=$?
check "the writer ran to its end under the kills ($(cat "$T/writer2.out") transactions)" test "$wr" = 0
total=$(tr -dc 0-9 <"$T/progress")
check "unmounted cleanly" umount_fs
check "converges after the kills" wait_lb_converged "$IMG" 90
check "image identical to the partition" same "$T/disk" "$IMG"
cp --sparse=always "$IMG" "$T/final"
if db_of "$T/final" "$T/final.db"; then
    check "the image's database holds all $total transactions" test "$(rows "$T/final.db")" = "$total"
else
    not_ok "the image's database opens, passes integrity_check, no gap"
fi
check "lb logged no full scan after the first" test "$(grep -c 'full scan' "$T/lb.log")" = 1

done_testing
