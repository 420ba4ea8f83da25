#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A real filesystem on the livewatch filter: ext4 made and mounted through
# nbdfuse and a loop device, a workload of copies, small files, renames,
# deletes, random data and fstrim, then the mirror must equal the disk,
# pass e2fsck, and hold the same files with the same checksums.
. "${top_srcdir:-.}/tests/functions.sh"
requires_root
requires nbdkit; requires nbdfuse; requires mkfs.ext4; requires e2fsck
requires python3; requires md5sum
[ -c /dev/fuse ] || skip "no /dev/fuse"
grep -qw fuse /proc/filesystems || skip "no FUSE in this kernel"
grep -qw ext4 /proc/filesystems || skip "no ext4 in this kernel"
losetup -f >/dev/null 2>&1 || skip "no free loop device"

# checksums DIR: "md5  ./path" for every file under DIR, sorted.
checksums () { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r md5sum); }

mkdir "$T/fuse" "$T/mnt" "$T/check"
# Registered before anything is mounted, so that a failure at any point
# unmounts; cleanups run last-registered-first: the loop mounts, then
# the FUSE mount, then nbdfuse, then nbdkit and the mirror.
cleanup "umount '$T/fuse' || umount -l '$T/fuse'"
cleanup "umount '$T/mnt' || umount -l '$T/mnt'"
cleanup "umount '$T/check' || umount -l '$T/check'"

truncate -s 256M "$T/disk"
start_nbdkit nbd "$T/disk"
start_mirror "$T/disk" "$T/img"
check "mirror converges after its first scan" wait_converged 60

nbdfuse "$T/fuse" --unix "$T/nbd.sock" 2>"$T/nbdfuse.log" &
NBDFUSE_PID=$!
cleanup "kill $NBDFUSE_PID"
wait_for 20 test -e "$T/fuse/nbd" || { cat "$T/nbdfuse.log"; bail "nbdfuse did not start"; }
check "nbdfuse shows the 256M export" test "$(stat -c %s "$T/fuse/nbd")" = 268435456

check "mkfs.ext4 through the filter" mkfs.ext4 -q -F "$T/fuse/nbd"
mount -o loop "$T/fuse/nbd" "$T/mnt" || bail "cannot mount the new filesystem"
ok "mounted with -o loop"

# --- the workload ---------------------------------------------------------------
# /usr/share/man: about 21000 files and 94 MB of mostly small files.
man_kb=$(du -sk /usr/share/man | cut -f1)
if [ "$man_kb" -lt 150000 ]; then src=/usr/share/man; else src=/usr/share/man/man3; fi
check "copy $src onto the filesystem" cp -a "$src" "$T/mnt/man"
check "many small files, renames and deletes" python3 - "$T/mnt" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(7)
d = os.path.join(root, "small")
os.mkdir(d)
for i in range(3000):
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rnd.randbytes(rnd.randrange(0, 9000)))
for i in range(0, 3000, 3):      # rename a third
    os.rename(os.path.join(d, "f%05d" % i), os.path.join(d, "renamed-%05d" % i))
for i in range(1, 3000, 5):      # delete a fifth
    p = os.path.join(d, "f%05d" % i)
    if os.path.exists(p):
        os.unlink(p)
os.rename(d, os.path.join(root, "small-moved"))
# Overwrite some files in place, truncate others.
names = sorted(os.listdir(os.path.join(root, "small-moved")))
for n in names[::7]:
    with open(os.path.join(root, "small-moved", n), "r+b") as f:
        f.write(rnd.randbytes(4096))
for n in names[1::11]:
    os.truncate(os.path.join(root, "small-moved", n), 100)
PY
# Delete part of the copy, rename part of it.
check "delete part of the copy" rm -rf "$T/mnt/man/man3" "$T/mnt/man/"*/man[56]
check "rename part of the copy" mv "$T/mnt/man/man1" "$T/mnt/man1-moved"
check "32 MiB of random data" dd if=/dev/urandom of="$T/mnt/random" bs=1M count=32 status=none
check "overwrite its middle in place" \
    dd if=/dev/urandom of="$T/mnt/random" bs=64k seek=100 count=50 conv=notrunc status=none
check "sync" sync
# fstrim turns freed blocks into trims (loop -> nbdfuse -> NBD trim).
if out=$(fstrim -v "$T/mnt" 2>&1); then diag "$out"; else diag "fstrim: $out"; fi
checksums "$T/mnt" >"$T/md5.live"
nfiles=$(wc -l <"$T/md5.live")
diag "$nfiles files on the live filesystem"
check "the live filesystem holds many files (> 5000)" test "$nfiles" -gt 5000

umount "$T/mnt"
check "loop mount unmounted" sh -c "! mountpoint -q '$T/mnt'"
umount "$T/fuse"
check "FUSE mount unmounted" sh -c "! mountpoint -q '$T/fuse'"
wait_for 10 sh -c "! kill -0 $NBDFUSE_PID 2>/dev/null"
check "nbdfuse exited" sh -c "! kill -0 $NBDFUSE_PID 2>/dev/null"

# --- the mirror ---------------------------------------------------------------
check "mirror converges" wait_converged 60
check "mirror equals the disk" same "$T/disk" "$T/img"
diag "$("$MIRROR" --stat --dir="$T" 1 | grep -E '^(writes|records|degrades|resumes|bits_set)=' | tr '\n' ' ')"
check "no plugin write failed" test "$(stat_of errors)" = 0
cp --sparse=always "$T/img" "$T/copy"
e2fsck -fn "$T/copy" >"$T/fsck.log" 2>&1
rc=$?
[ $rc = 0 ] || sed 's/^/# /' "$T/fsck.log" | tail -20
check "e2fsck -fn on a copy of the mirror exits 0" test $rc = 0
if mount -o loop,ro "$T/copy" "$T/check"; then
    ok "the mirror's copy mounts read-only"
    checksums "$T/check" >"$T/md5.mirror"
    umount "$T/check"
else
    not_ok "the mirror's copy mounts read-only"
    : >"$T/md5.mirror"
fi
check "same number of files in the mirror ($(wc -l <"$T/md5.mirror") of $nfiles)" \
    test "$(wc -l <"$T/md5.mirror")" = "$nfiles"
check "every file's md5 in the mirror equals the live one" cmp -s "$T/md5.live" "$T/md5.mirror"

done_testing
