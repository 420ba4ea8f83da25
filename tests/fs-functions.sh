# SPDX-License-Identifier: BSD-3-Clause
# Shell helpers for tests that put ext4 on the filter (sourced after
# tests/functions.sh): nbdfuse exposes the export at $T/fuse/nbd, a loop
# device mounts it at $T/mnt; $T/chk is where copies are looked at.
mkdir -p "$T/fuse" "$T/mnt" "$T/chk"

# unmount_all: the cleanup for mount_fs, run at exit whatever happened:
# the loop mounts (a few tries: a killed writer's child may still hold
# one), then fuse, then nbdfuse.
unmount_all () {
    unmount_loops "$T/mnt" "$T/chk"
    unmount_fuses "$T/fuse"
    kill "$(cat "$T/nbdfuse.pid" 2>/dev/null)" 2>/dev/null
    return 0
}
# mount_fs [mkfs]: nbdfuse in the foreground (backgrounded) exposes the
# export as $T/fuse/nbd; ext4 on it through a loop device at $T/mnt.
# The cleanup is registered before anything is mounted, and after the
# nbdkit serving it, so it runs before nbdkit is stopped.
mount_fs () {
    cleanup unmount_all
    nbdfuse "$T/fuse" --unix "$T/nbd.sock" 2>>"$T/nbdfuse.log" &
    echo $! >"$T/nbdfuse.pid"
    wait_for 20 test -e "$T/fuse/nbd" || { diag "nbdfuse did not start"; return 1; }
    if [ "${1:-}" = mkfs ]; then mkfs.ext4 -q "$T/fuse/nbd" || return 1; fi
    mount -o loop "$T/fuse/nbd" "$T/mnt"
}
# umount_fs: the file system, then fuse; every write has reached nbdkit.
umount_fs () {
    local pid
    umount "$T/mnt" || return 1
    pid=$(cat "$T/nbdfuse.pid")
    fusermount -u "$T/fuse" || return 1
    wait_for 20 sh -c "! kill -0 $pid 2>/dev/null"
    wait "$pid" 2>/dev/null
    return 0
}
