#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Restore points across lbd crashes: lbd SIGKILLed at random instants
# while it takes a point, while it saves old blocks into the newest
# point's overlay (a burst of writes right after the point), and while
# it prunes (retention by the test clock, and lbd --drop-point of a
# middle point, which merges its blocks into its older neighbour), then
# restarted.  After each restart: every listed point reads exactly the
# partition as it was when that point was taken (nbdcopy of its export
# NAME@POINT, compared with a copy of the partition saved then), no
# point is listed that was not taken, and replication goes on (the
# image converges to the partition).  The image's folder is the test's
# (ext4 here: the overlay path) unless HISTORY_SRVFS names a file system
# to make on a loop device for it (history-crash-xfs.sh: reflinks).
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires nbdcopy; requires python3

SRVFS=${HISTORY_SRVFS:-}
port=$(free_port); oport=$(free_port)
mkdir -p "$T/srv"
if [ -n "$SRVFS" ]; then
    requires_root; requires "mkfs.$SRVFS"
    losetup -f >/dev/null 2>&1 || skip "no free loop device"
    truncate -s 512M "$T/srvfs.img"
    "mkfs.$SRVFS" -q "$T/srvfs.img" >/dev/null 2>&1 || skip "mkfs.$SRVFS failed"
    mount -o loop "$T/srvfs.img" "$T/srv" || skip "cannot mount $SRVFS"
    # Registered first: runs last, once lbd is gone.
    cleanup "umount '$T/srv' 2>/dev/null || umount -l '$T/srv'"
fi
c1_client history=minutely:3
ctl () { "$LBD" --control="$T/lbd.ctl" "$@"; }
points () { ctl --points --json "$T/srv/lbd.conf" c1 |
    python3 -c 'import json,sys; print(" ".join(p["id"] for p in json.load(sys.stdin)["points"]))'; }
# listed_on_disk: the point IDs the list file names (lbd may be dead).
listed_on_disk () { sed -n 's/^point \([^ ]*\) .*/\1/p' "$IMG.points" 2>/dev/null | tr '\n' ' '; }
clock () { echo "$1" >"$T/clock"; }
export LIVEBACKUP_TEST_CLOCK=$T/clock
NBD="nbd+unix:///?socket=$T/nbd.sock"
# burst SEED N: N random 4k..64k writes and a flush, straight to nbdkit.
burst () {
    nbdsh -u "$NBD" -c "
import random
r = random.Random($1)
for i in range($2):
    n = r.choice([4096, 8192, 65536])
    h.pwrite(bytes([r.randrange(256)]) * n, r.randrange(16 * 1024 * 1024 // n) * n)
h.flush()"
}
# verify: every listed point reads its saved copy; none is listed that
# was not taken.
verify () {
    local id bad=0
    for id in $(points); do
        if [ ! -f "$T/copy.$id" ]; then
            diag "point $id is listed but was never taken"; bad=1; continue
        fi
        nbdcopy "nbd://127.0.0.1:$oport/c1%40$id" "$T/out" 2>>"$T/nbdcopy.log" &&
            cmp -s "$T/out" "$T/copy.$id" || { diag "point $id does not read its moment"; bad=1; }
        rm -f "$T/out"
    done
    return $bad
}

t=1796601600        # 2026-12-07 00:00 UTC
clock $t
truncate -s 16M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1
check "first contact converges" wait_lb_converged "$IMG" 60
# The first point: taken at the first consistent sync.
check "a point is taken at the first consistent sync" \
    wait_for 20 sh -c "'$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -q '^20261207T0000Z '"
cp "$T/disk" "$T/copy.20261207T0000Z"

RANDOM=4242
kills=0 ok_rounds=0 taken=1
for round in 1 2 3 4 5 6 7 8 9 10; do
    burst "$round" 40
    wait_lb_converged "$IMG" 60 || { diag "round $round: no convergence"; continue; }
    prev_t=$t
    t=$((t + 60))
    id=$(date -u -d "@$t" +%Y%m%dT%H%MZ)
    clock $t
    # The point is taken when this write, the minute's first, reaches
    # lbd (nothing else writes), before lbd applies it: its moment is the
    # partition right before it.
    cp "$T/disk" "$T/copy.$id"
    nbdsh -u "$NBD" -c "h.pwrite(b'p' * 4096, $((round * 4096))); h.flush()"
    # Right away: old blocks saved into the new point's overlay, a
    # middle point dropped (a merge), and the kill at a random instant.
    burst $((round + 100)) 300 &
    bpid=$!
    mid=$(points | awk '{ if (NF >= 3) print $2 }')
    dpid=
    if [ -n "$mid" ]; then
        ctl --drop-point "$T/srv/lbd.conf" c1 "$mid" >/dev/null 2>&1 &
        dpid=$!
    fi
    sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
    old=$(lbd_pid lbd)
    kill -9 "$old"; kills=$((kills + 1))
    wait "$old" 2>/dev/null     # gone, its ports with it
    wait "$bpid"
    [ -n "$dpid" ] && wait "$dpid"
    case " $(listed_on_disk) " in
        *" $id "*) taken=$((taken + 1)) ;;
        *) # Not taken before the kill: take none later in this minute,
           # whose moment would be another.
           rm -f "$T/copy.$id"; clock $prev_t ;;
    esac
    start_lbd lbd "$T/srv/lbd.conf"
    if wait_lb_converged "$IMG" 60 && same "$T/disk" "$IMG" && verify; then
        ok_rounds=$((ok_rounds + 1))
    else
        diag "round $round failed (points: $(listed_on_disk))"
    fi
    clock $t
done
check "10 rounds with lbd SIGKILLed: every listed point reads its moment, replication converges ($ok_rounds of 10; $taken points taken before kills)" \
    test "$ok_rounds" = 10
check "points were taken between the kills (at least 3: $taken)" test "$taken" -ge 3
check "retention pruned: at most 3 points listed ($(points))" \
    wait_for 20 sh -c "[ \$(sed -n '/^point /p' '$IMG.points' | wc -l) -le 3 ]"
check "no data file is left that the list does not name" sh -c "
    for f in '$IMG'.point-*; do
        [ -e \"\$f\" ] || continue
        id=\${f#'$IMG'.point-}; id=\${id%.cow}
        grep -q \"^point \$id \" '$IMG.points' || { echo \"# stray \$f\"; exit 1; }
    done"
old=$(lbd_pid lbd)
kill "$old"
wait "$old" 2>/dev/null
start_lbd lbd "$T/srv/lbd.conf"
check "every listed point verifies after the restart" verify
mode=$(ctl --points "$T/srv/lbd.conf" c1 | sed -n '1s/.*(\(.*\)).*/\1/p')
diag "storage: $mode; $(grep -c 'cut off' "$T/lbd.log") torn overlay ends cut off at restarts, $(grep -c 'pruned$' "$T/lbd.log") points pruned"
if [ -n "$SRVFS" ]; then
    check "on $SRVFS, points are reflinked copies" test "$mode" = "reflinked copies"
else
    check "points are kept as reflinked copies or overlays ($mode)" \
        test -n "$mode"
fi
done_testing
