#!/bin/bash
# livebackup demo: install what is needed, build, then run the whole
# pipeline on a file-backed partition, on loopback:
#   nbdkit (file plugin + livewatch filter) serves a 256 MiB partition;
#   lbd keeps the backup image; lb ships every write to it over TLS 1.3
#   (pre-shared key); ext4 is made and mounted on the partition (nbdfuse +
#   loop), files are written, copied, deleted and synced; at the end the
#   backup image is byte-identical to the partition and e2fsck finds it
#   clean.
set -eu
cd "$(dirname "$0")"
./scripts/install-deps.sh
./scripts/build.sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

D=$(mktemp -d /tmp/lbdemo.XXXXXX)
FILTER=$PWD/.libs/nbdkit-livewatch-filter.so
MIRROR=$PWD/tests/lw-mirror
LB=$PWD/lb/lb
LBD=$PWD/lbd/lbd
cleanup () {
    set +e
    mountpoint -q "$D/mnt" && umount "$D/mnt"
    mountpoint -q "$D/fuse" && umount "$D/fuse"
    [ -n "${LBPID:-}" ] && kill "$LBPID" 2>/dev/null && wait "$LBPID" 2>/dev/null
    [ -n "${LBDPID:-}" ] && kill "$LBDPID" 2>/dev/null && wait "$LBDPID" 2>/dev/null
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

say "the backup server: lbd with one client line (TLS, pre-shared key)"
mkdir -p "$D/server/client1"
head -c 64 /dev/urandom >"$D/backup.key"; chmod 600 "$D/backup.key"
cp "$D/backup.key" "$D/server/client1/key"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$D/server/lbd.conf" <<CONF
client file=client1/partition key=client1/key listen=127.0.0.1/$PORT type=simple
CONF
cat "$D/server/lbd.conf"
"$LBD" -n "$D/server/lbd.conf"
"$LBD" --control="$D/lbd.ctl" "$D/server/lbd.conf" 2>"$D/lbd.log" &
LBDPID=$!
until [ -S "$D/lbd.ctl" ]; do sleep 0.1; done

say "the client: lb 1 PARTITION 127.0.0.1 $PORT KEYFILE"
"$LB" --dir="$D" --retry=1 1 "$D/partition" 127.0.0.1 "$PORT" "$D/backup.key" \
    2>"$D/lb.log" &
LBPID=$!

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

say "waiting for lb to report live with an empty queue"
for i in $(seq 600); do
    "$MIRROR" --stat --dir="$D" 1 | grep -q '^converged=1' \
        && grep -q '^phase=live' "$D/server/client1/partition.state" && break
    sleep 0.1
done
"$LB" --status --dir="$D" 1
"$LBD" --status --control="$D/lbd.ctl" "$D/server/lbd.conf"

say "the backup image against the partition"
IMG=$D/server/client1/partition
cmp "$D/partition" "$IMG" && echo "the backup image is byte-identical to the partition"
cat "$IMG.state"
cp --sparse=always "$IMG" "$D/copy.img"
e2fsck -fn "$D/copy.img"

say "what lb and lbd logged"
cat "$D/lb.log" "$D/lbd.log"
echo
echo "demo OK"
