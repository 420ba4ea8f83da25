#!/bin/bash
# livebackup demo: install what is needed, build, then run the capture
# pipeline on a file-backed partition:
#   nbdkit (file plugin + livewatch filter) serves a 256 MiB partition,
#   ext4 is made and mounted on it (nbdfuse + loop), files are written,
#   copied, deleted and synced while a consumer mirrors every write
#   through the shared-memory channel; at the end the mirror is
#   byte-identical to the partition and e2fsck finds it clean.
set -eu
cd "$(dirname "$0")"
./scripts/install-deps.sh
./scripts/build.sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

D=$(mktemp -d /tmp/lbdemo.XXXXXX)
FILTER=$PWD/.libs/nbdkit-livewatch-filter.so
MIRROR=$PWD/tests/lw-mirror
cleanup () {
    set +e
    mountpoint -q "$D/mnt" && umount "$D/mnt"
    mountpoint -q "$D/fuse" && umount "$D/fuse"
    [ -n "${MPID:-}" ] && kill "$MPID" 2>/dev/null && wait "$MPID" 2>/dev/null
    [ -s "$D/nbdkit.pid" ] && kill "$(cat "$D/nbdkit.pid")"
    rm -rf "$D"
}
trap cleanup EXIT
say () { printf '\n== %s\n' "$*"; }
mkdir "$D/fuse" "$D/mnt"

say "a 256 MiB partition, served by nbdkit through the livewatch filter (unit 1)"
truncate -s 256M "$D/partition"
nbdkit -U "$D/nbd.sock" -P "$D/nbdkit.pid" --filter="$FILTER" \
    file "$D/partition" livewatch-unit=1 livewatch-dir="$D"
until "$MIRROR" --stat --dir="$D" 1 >/dev/null 2>&1; do sleep 0.1; done
ls -l "$D/livewatch-1"

say "the consumer attaches and mirrors into backup.img"
"$MIRROR" --dir="$D" --state="$D/backup.img.state" --max-seconds=600 \
    1 "$D/partition" "$D/backup.img" &
MPID=$!

say "ext4 on the served partition (nbdfuse + loop), a workload, sync"
nbdfuse "$D/fuse" --unix "$D/nbd.sock" &
until [ -e "$D/fuse/nbd" ]; do sleep 0.1; done
mkfs.ext4 -q "$D/fuse/nbd"
mount -o loop "$D/fuse/nbd" "$D/mnt"
cp -a /usr/share/man "$D/mnt/man"
cp -a /etc "$D/mnt/etc" 2>/dev/null || true
rm -rf "$D/mnt/man/man3"
mv "$D/mnt/etc" "$D/mnt/etc.copy"
dd if=/dev/urandom of="$D/mnt/random" bs=1M count=32 status=none
sync
df -h "$D/mnt" | tail -1
umount "$D/mnt"
umount "$D/fuse"

say "waiting for the mirror to converge"
for i in $(seq 600); do
    "$MIRROR" --stat --dir="$D" 1 | grep -q '^converged=1' && break
    sleep 0.1
done
"$MIRROR" --stat --dir="$D" 1 | grep -E '^(mode|writes|records|bytes_queued|degrades|resumes)='

say "the mirror against the partition"
cmp "$D/partition" "$D/backup.img" && echo "backup.img is byte-identical to the partition"
e2fsck -fn "$D/backup.img"
echo
echo "demo OK"
