#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A scripted week of restore points through the whole pipeline: ext4
# on the filter (nbdfuse + a loop device), replicated by lb to lbd,
# whose image lies on its own file system: ext4 (lbd's overlays), or
# XFS with HISTORY_SRVFS=xfs (history-week-xfs.sh: reflinked copies).
# The test clock (LIVEBACKUP_TEST_CLOCK=FILE) walks through nine
# moments from a Monday to the next; at each, files are created,
# changed and deleted, the file system is frozen (fsfreeze: clean on
# disk), lbd takes the point, and a manifest (md5 of every file) is
# recorded.  Every point is restored through its export NAME@POINT
# (nbdfuse -r, mounted read-only) and compared with its manifest: when
# taken; after retention (history=hourly:3,daily:4,weekly:2) pruned the
# others, two of them from the middle of the chain; after lbd
# --drop-point of a middle point; and after lbd restarts.  At the end
# a point taken by lb --mark around fsfreeze, which retention keeps.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdfuse; requires nbdsh; requires nbdinfo
requires nbdcopy; requires mkfs.ext4; requires fusermount; requires fsfreeze
requires python3; requires_root
SRVFS=${HISTORY_SRVFS:-ext4}
requires "mkfs.$SRVFS"
[ -c /dev/fuse ] || skip "no /dev/fuse"
losetup -f >/dev/null 2>&1 || skip "no free loop device"

port=$(free_port); oport=$(free_port); xport=$(free_port)
mkdir -p "$T/srv" "$T/fuse" "$T/mnt" "$T/rfuse" "$T/rmnt"
truncate -s 512M "$T/srvfs.img"
if [ "$SRVFS" = ext4 ]; then mkfs.ext4 -q -F "$T/srvfs.img"
else "mkfs.$SRVFS" -q "$T/srvfs.img" >/dev/null; fi || bail "mkfs.$SRVFS failed"
mount -o loop "$T/srvfs.img" "$T/srv" || bail "cannot mount the server's $SRVFS"
cleanup "umount '$T/srv' 2>/dev/null || umount -l '$T/srv'"   # runs last
mkdir -p "$T/srv/c1"
make_key "$T/key"; cp "$T/key" "$T/srv/c1/key"
cat >"$T/srv/lbd.conf" <<CONF
client name=c1 file=c1/disk.img key=c1/key listen=127.0.0.1/$port \\
    history=hourly:3,daily:4,weekly:2
export listen=127.0.0.1/$xport
export listen=127.0.0.1/$oport tls=off
CONF
IMG=$T/srv/c1/disk.img
check "lbd -n accepts history=" test "$("$LBD" -n "$T/srv/lbd.conf" 2>&1)" = "configuration OK"
ctl () { "$LBD" --control="$T/lbd.ctl" "$@"; }
points () { ctl --points --json "$T/srv/lbd.conf" c1 |
    python3 -c 'import json,sys; print(" ".join(p["id"] for p in json.load(sys.stdin)["points"]))'; }
export LIVEBACKUP_TEST_CLOCK=$T/clock
MON=1796601600       # Monday 2026-12-07 00:00 UTC
echo $MON >"$T/clock"

unmount_all () {
    local m
    for m in "$T/mnt" "$T/rmnt"; do fsfreeze -u "$m" 2>/dev/null; done
    unmount_loops "$T/mnt" "$T/rmnt"
    unmount_fuses "$T/fuse" "$T/rfuse"
    kill $(cat "$T"/*.fusepid 2>/dev/null) 2>/dev/null
    return 0
}

# The partition is 64M; ext4 takes the first 60M, the last 4M are the
# test's, to make lbd sync (and so take a point) while ext4 is frozen.
truncate -s 64M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1
check "first contact converges" wait_lb_converged "$IMG" 60
cleanup unmount_all
fuse_start "$T/fuse" || bail "nbdfuse did not start"
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$T/fuse/nbd" 60M ||
    bail "mkfs.ext4 failed"
mount -o loop,noatime "$T/fuse/nbd" "$T/mnt" || bail "mount failed"
M=$T/mnt

# manifest FILE: md5 of every file under the mount (from its root).
manifest () { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r md5sum); }
# take ID OFFSET_HOURS: freeze, advance the clock, sync lbd by a write
# past the file system, wait for point ID, thaw.
take () {
    local id=$1 t=$((MON + $2 * 3600)) r=0
    sync
    wait_lb_converged "$IMG" 60 || return 1
    manifest "$M" >"$T/m.$id"
    fsfreeze -f "$M" || return 1
    wait_lb_converged "$IMG" 60 || r=1
    echo $t >"$T/clock"
    nbdsh -u "nbd+unix:///?socket=$T/nbd.sock" \
        -c "h.pwrite(b'$id'[:8] * 512, 62 * 1024 * 1024); h.flush()" || r=1
    wait_for 30 sh -c "'$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -q '^$id '" || r=1
    fsfreeze -u "$M"
    return $r
}
# restore ID: point ID through its export, mounted read-only, against
# its manifest (the same files, the same contents).
restore () {
    local id=$1 r=0
    fuse_start "$T/rfuse" -r "nbd://127.0.0.1:$oport/c1%40$id" ||
        { diag "nbdfuse on c1@$id did not start"; return 1; }
    if mount -o loop,ro,noload "$T/rfuse/nbd" "$T/rmnt"; then
        manifest "$T/rmnt" >"$T/got.$id"
        cmp -s "$T/got.$id" "$T/m.$id" || {
            diag "c1@$id differs from its manifest:"
            diff "$T/m.$id" "$T/got.$id" | head -5 | sed 's/^/#   /'; r=1; }
        umount "$T/rmnt" || r=1
    else
        r=1
    fi
    fuse_stop "$T/rfuse" || r=1
    return $r
}
restore_all () {
    local id r=0
    for id in $(points); do restore "$id" || r=1; done
    return $r
}

# Nine moments (hours from Monday 00:00), the files of each day.
day () {
    local n=$1
    set -e
    mkdir -p "$M/d$n"
    cp -a /usr/share/man/man$(( n % 8 + 1 )) "$M/d$n/man" 2>/dev/null || true
    dd if=/dev/urandom of="$M/d$n/data" bs=64k count=$((n % 5 + 1)) status=none
    echo "day $n" >>"$M/journal.txt"
    [ -e "$M/d$((n - 1))/data" ] && dd if=/dev/urandom of="$M/d$((n - 1))/data" \
        bs=4k count=3 seek=1 conv=notrunc status=none
    rm -rf "$M/d$((n - 3))"
    [ -d "$M/d$((n - 2))/man" ] && mv "$M/d$((n - 2))/man" "$M/d$((n - 2))/man.old"
    return 0
}
HOURS="10 32 33 34 57 81 129 153 177"
n=0 taken=0 fresh=0
for h in $HOURS; do
    n=$((n + 1))
    id=$(date -u -d "@$((MON + h * 3600))" +%Y%m%dT%H%MZ)
    (day $n) || diag "day $n's work failed"
    if take "$id" "$h"; then taken=$((taken + 1)); else diag "point $id not taken"; fi
    restore "$id" && fresh=$((fresh + 1))
done
check "nine points taken on the schedule ($taken)" test "$taken" = 9
check "each restored through its export when taken matches its manifest ($fresh of 9)" \
    test "$fresh" = 9
want="20261208T1000Z 20261210T0900Z 20261212T0900Z 20261213T0900Z 20261214T0900Z"
want_after_prune () {
    # hourly:3 keeps 12-14 09:00, 12-13 09:00, 12-12 09:00; daily:4 adds
    # 12-10 09:00; weekly:2 keeps 12-14 and 12-13.
    [ "$(points)" = "20261210T0900Z 20261212T0900Z 20261213T0900Z 20261214T0900Z" ]
}
check "retention kept the points the policy names ($(points))" wait_for 30 want_after_prune
# Tuesday 08:00 and 09:00 went while Monday 10:00 (older) stayed: pruned
# from the middle of the chain.
check "points from the middle of the chain were pruned" \
    sh -c "grep -q 'point 20261208T0800Z pruned' '$T/lbd.log' && grep -q 'point 20261208T0900Z pruned' '$T/lbd.log'"
check "every point left reads its moment after pruning" restore_all
ls=$(nbdinfo --list "nbd://127.0.0.1:$oport/" 2>>"$T/nbdinfo.log")
check "nbdinfo --list shows the points as c1@POINT with their time" sh -c "
    grep -q 'export=\"c1@20261214T0900Z\"' <<'E'
$ls
E
    grep -q 'restore point of c1: the image as it was at 2026-12-14T09:00:00Z' <<'E'
$ls
E"
"$LBD" --psk-line "$T/srv/lbd.conf" c1 >"$T/psk"
check "over TLS-PSK too" sh -c "nbdinfo --list 'nbds://c1@127.0.0.1:$xport/?tls-psk-file=$T/psk' 2>>'$T/nbdinfo.log' | grep -q 'export=\"c1@20261210T0900Z\"'"
check "nbdcopy of a point equals what nbdfuse shows of it" sh -c "
    nbdcopy 'nbd://127.0.0.1:$oport/c1%4020261212T0900Z' '$T/copy.img' &&
    nbdcopy 'nbd://127.0.0.1:$oport/c1%4020261212T0900Z' - | cmp -s - '$T/copy.img' &&
    test \$(stat -c %s '$T/copy.img') = 67108864"
rm -f "$T/copy.img"
st=$(ctl --status "$T/srv/lbd.conf")
check "lbd --status shows the history" \
    grep -q "history: 4 points, oldest 20261210T0900Z, newest 20261214T0900Z, .* held; history=hourly:3,daily:4,weekly:2" <<<"$st"
check "lbd --drop-point removes a middle point" \
    ctl --drop-point "$T/srv/lbd.conf" c1 20261212T0900Z
check "... which is gone from the list" test "$(points)" = "20261210T0900Z 20261213T0900Z 20261214T0900Z"
check "... and the others still read their moments" restore_all
check "dropping an unknown point fails" sh -c "! '$LBD' --control='$T/lbd.ctl' --drop-point '$T/srv/lbd.conf' c1 20991231T0000Z"

# lbd restarted: the points are still there and still read right, and
# replication goes on (the image converges after more writes).
old=$(lbd_pid lbd); kill "$old"; wait "$old" 2>/dev/null
start_lbd lbd "$T/srv/lbd.conf"
check "after a restart, the same points are listed" test "$(points)" = "20261210T0900Z 20261213T0900Z 20261214T0900Z"
check "and each reads its moment" restore_all
(day 10) || true
sync
check "replication goes on after the restart" wait_lb_converged "$IMG" 60
# A mark around fsfreeze (lb --mark): a point of exactly the frozen
# files, labelled, which the retention policy keeps.
(day 11) || true
sync
fsfreeze -f "$M"
manifest "$M" >"$T/m.friday"
"$LB" --dir="$T" --mark=friday --wait=30 1 >"$T/mark.out" 2>&1; rc=$?
fsfreeze -u "$M"
check "lb --mark=friday between fsfreeze -f and -u: point taken ($rc: $(cat "$T/mark.out"))" \
    test "$rc" = 0
(day 12) || true
sync
check "c1@friday holds exactly the frozen files" restore friday
echo $((MON + 200 * 3600)) >"$T/clock"
nbdsh -u "nbd+unix:///?socket=$T/nbd.sock" -c "h.pwrite(b'tick' * 1024, 62 * 1024 * 1024); h.flush()"
check "a later point on the schedule is taken" \
    wait_for 30 sh -c "'$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -q '^20261215T0800Z '"
check "the marked point outlives the retention that follows" restore friday
mode=$(ctl --points "$T/srv/lbd.conf" c1 | sed -n '1s/.*(\(.*\)).*/\1/p')
if [ "$SRVFS" = ext4 ]; then
    check "on ext4, points are lbd's overlays ($mode)" test "$mode" = overlays
else
    check "on $SRVFS, points are reflinked copies ($mode)" test "$mode" = "reflinked copies"
fi
diag "$(ctl --points "$T/srv/lbd.conf" c1 | head -1)"
fid=$(ctl --points --json "$T/srv/lbd.conf" c1 | python3 -c '
import json, sys
print(" ".join(p["id"] for p in json.load(sys.stdin)["points"] if p.get("label") == "friday"))')
ctl --drop-point "$T/srv/lbd.conf" c1 friday >"$T/drop.out" 2>&1; rc=$?
check "lbd --drop-point by label: done, naming the ID ($fid): $(cat "$T/drop.out")" \
    sh -c "[ $rc = 0 ] && [ -n '$fid' ] && grep -qx 'restore point friday ($fid) of c1 dropped' '$T/drop.out'"
check "... and the point is gone" sh -c "! points | grep -qw '$fid'"
done_testing
