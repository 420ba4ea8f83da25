#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb and lbd under a real file system, TLS: ext4 on the filter through
# nbdfuse and a loop device.  A workload of copies, deletes, renames and
# dd converges to an image identical to the partition that e2fsck passes;
# then copies of the image taken while lbd said "live", during a running
# workload, are each a file system as it was at some earlier moment (as
# after a power cut): mounting replays the journal and e2fsck passes.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdfuse; requires mkfs.ext4; requires e2fsck
requires fusermount; requires_root
[ -c /dev/fuse ] || skip "no /dev/fuse"
losetup -f >/dev/null 2>&1 || skip "no free loop device"

. "${top_srcdir:-.}/tests/fs-functions.sh"
one_client

# fsck_copy IMAGE: replay IMAGE's journal by mounting it (a copy: it is
# changed), then e2fsck -fn must find nothing.  Output in IMAGE.fsck.
fsck_copy () {
    mount -o loop "$1" "$T/chk" >"$1.fsck" 2>&1 || { sed 's/^/#   /' "$1.fsck"; return 1; }
    umount "$T/chk" >>"$1.fsck" 2>&1 || return 1
    fsck_n "$1" ">>"
}
# fsck_n IMAGE [>>]: e2fsck -fn IMAGE, output in IMAGE.fsck (shown if it fails).
fsck_n () {
    if [ "${2:-}" = ">>" ]; then e2fsck -fn "$1" >>"$1.fsck" 2>&1
    else e2fsck -fn "$1" >"$1.fsck" 2>&1; fi
    local r=$?
    [ $r = 0 ] || { diag "e2fsck -fn $1 exited $r:"; tail -20 "$1.fsck" | sed 's/^/#   /'; }
    return $r
}

# --- the default queue (16M) ---------------------------------------------
truncate -s 256M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "first contact converges" wait_lb_converged "$IMG" 60
check "ext4 made and mounted through nbdfuse and a loop device" mount_fs mkfs

M=$T/mnt
work1 () (
    set -e
    cp -a /usr/share/man/man5 "$M/man5"
    cp -a /usr/share/man/man8 "$M/man8"
    cp -a /etc "$M/etc"
    sync
    dd if=/dev/urandom of="$M/big" bs=1M count=24 status=none
    sync
    kill -CONT "$(lbd_pid lbd)"     # lbd back: lb catches up meanwhile
    mv "$M/man5" "$M/man5.old"
    rm -rf "$M/man8"
    cp -a /usr/share/man/man7 "$M/man7"
    mkdir -p "$M/deep/a/b/c"
    mv "$M/etc" "$M/deep/a/b/c/etc"
    dd if=/dev/urandom of="$M/big" bs=4k count=100 seek=1000 conv=notrunc status=none
    dd if=/dev/zero of="$M/zeros" bs=1M count=8 status=none
    rm -f "$M/big"
    sync
    cp -a /usr/share/man/man3 "$M/man3"
    dd if=/dev/urandom of="$M/last" bs=1M count=4 conv=fsync status=none
    sync
)
# lbd stopped for the first 30 MB: more than the queue holds, so the
# filter degrades and lb copies blocks while ext4 goes on writing.
kill -STOP "$(lbd_pid lbd)"
check "workload: copies, deletes, renames, dd, sync" work1
kill -CONT "$(lbd_pid lbd)"
check "the filter degraded during it (lb caught up)" grep -q "lb: catching-up" "$T/lb.log"
(cd "$M" && find . -type f -print0 | sort -z | xargs -0 md5sum) >"$T/files.md5"
check "unmounted cleanly" umount_fs
check "converges after the workload" wait_lb_converged "$IMG" 90
check "image equals the partition" same "$T/disk" "$IMG"
check "image state: consistent" test "$(state_of "$IMG" consistent)" = 1
cp --sparse=always "$IMG" "$T/copy0"
check "e2fsck -fn passes on the image" fsck_n "$T/copy0"
files_ok () {
    mount -o loop,ro "$T/copy0" "$T/chk" || return 1
    (cd "$T/chk" && md5sum --quiet -c "$T/files.md5") >"$T/md5.log" 2>&1; local r=$?
    umount "$T/chk"; [ $r = 0 ] || head -5 "$T/md5.log" | sed 's/^/#   /'
    return $r
}
check "every file reads back from the image" files_ok
rm -f "$T/copy0"

# --- a 64M queue: stays live; copies taken while live are consistent ---
stop_nbdkit nbd; rm -f "$T/nbd.sock"
start_nbdkit nbd "$T/disk" livewatch-queue=64M
check "lb follows the restarted nbdkit and converges" wait_lb_converged "$IMG" 60
check "ext4 mounted again" mount_fs

# work2: bounded (~10 s) tree copies, deletes and syncs.
work2 () {
    local end=$((SECONDS + 10)) i=0
    while [ $SECONDS -lt $end ] && [ $i -lt 200 ]; do
        i=$((i + 1))
        cp -a /usr/share/man/man5 "$M/w$i" || return 1
        mv "$M/w$i" "$M/r$i" || return 1
        rm -rf "$M/r$((i - 2))"
        dd if=/dev/urandom of="$M/f$((i % 3))" bs=64k count=16 status=none || return 1
        [ $((i % 2)) = 0 ] && sync
        sleep 0.2
    done
    sync
}
work2 >"$T/work2.log" 2>&1 &
wpid=$!
cleanup "pkill -P $wpid; kill $wpid"     # the loop and its current cp or dd
lbdpid=$(lbd_pid lbd)
live=0
sleep 1
for round in 1 2 3 4 5; do
    kill -STOP "$lbdpid"
    ph=$(state_of "$IMG" phase); cs=$(state_of "$IMG" consistent)
    if [ "$ph" = live ] && [ "$cs" = 1 ]; then
        cp --sparse=always "$IMG" "$T/copy-live$round"
        live=$((live + 1))
    else
        diag "round $round: lbd's state says phase=$ph consistent=$cs; not counted"
    fi
    kill -CONT "$lbdpid"
    sleep 1.5
done
wait "$wpid"; wr=$?
check "the workload ran to its end" test "$wr" = 0
check "at least 3 copies taken while live ($live)" test "$live" -ge 3
recov=0
for c in "$T"/copy-live*; do
    case $c in *.fsck) continue ;; esac
    [ -f "$c" ] || continue
    dumpe2fs -h "$c" 2>/dev/null | grep -q needs_recovery && recov=$((recov + 1))
    check "$(basename "$c"): mounts (journal replayed), e2fsck -fn passes" fsck_copy "$c"
    rm -f "$c"
done
diag "$recov of the $live copies had a journal to replay"

check "unmounted cleanly after the live workload" umount_fs
check "converges after the live workload" wait_lb_converged "$IMG" 60
check "image equals the partition after the live workload" same "$T/disk" "$IMG"
cp --sparse=always "$IMG" "$T/copy1"
check "e2fsck -fn passes on the final image" fsck_n "$T/copy1"

done_testing
