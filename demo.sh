#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# livebackup demo: install what is needed, build, then run the whole
# pipeline on a file-backed partition, on loopback, and check the result:
#   nbdkit (file plugin + livewatch filter) serves a 256 MiB partition;
#   lbd keeps the backup image; lb ships every write to it over TLS 1.3
#   (pre-shared key); ext4 is made and mounted on the served partition
#   (nbdfuse + loop), files are written, copied and deleted; at the end
#   the backup image is byte-identical to the partition, and a restore
#   over NBD from lbd reads the same bytes, which e2fsck finds clean.
# It uses only what "make" builds.  Every wait has a limit: a step that
# does not come up ends the demo, naming what it waited for and showing
# the tail of each log.
set -eu
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
    echo "demo.sh: run it as root (sudo ./demo.sh): it installs packages and mounts a filesystem" >&2
    exit 1
fi
./scripts/install-deps.sh
./scripts/build.sh
# Debian's python first: nbdsh and friends need its nbd module.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

T0=$SECONDS
D=$(mktemp -d /tmp/lbdemo.XXXXXX)
FILTER=$PWD/.libs/nbdkit-livewatch-filter.so
LB=$PWD/lb/lb
LBD=$PWD/lbd/lbd
DAEMONS=()          # NAME:PID of what the demo started, checked at each wait
FAILED=

say () {
    printf '\n== %s\n' "$1"; shift
    local line; for line in "$@"; do printf '   %s\n' "$line"; done
}
indent () { sed 's/^/   /'; }

# fail WHY: the demo stops here; show every log's tail and keep $D.
fail () {
    trap - ERR
    report "$*"
    exit 1
}
report () {
    FAILED=1
    printf '\ndemo.sh: FAILED: %s\n' "$*" >&2
    local log
    for log in "$D"/*.log; do
        [ -s "$log" ] || continue
        printf '\n-- last lines of %s:\n' "$log" >&2
        tail -n 15 "$log" | indent >&2
    done
    printf '\n(the demo'\''s files are kept in %s)\n' "$D" >&2
}
trap 'fail "line $LINENO: a command failed (exit status $?)"' ERR
trap 'exit 130' INT TERM

# alive: every daemon the demo started still runs.
alive () {
    local d
    for d in "${DAEMONS[@]}"; do
        kill -0 "${d#*:}" 2>/dev/null || fail "${d%%:*} exited unexpectedly"
    done
}
# wait_until SECONDS WHAT CMD...: poll CMD every 0.2 s, at most SECONDS.
wait_until () {
    local limit=$1 what=$2 end=$((SECONDS + $1)); shift 2
    until "$@" >/dev/null 2>&1; do
        alive
        [ "$SECONDS" -lt "$end" ] || fail "gave up after $limit s waiting for $what"
        sleep 0.2
    done
}
# limited SECONDS WHAT CMD...: run CMD, which must succeed within SECONDS.
limited () {
    local limit=$1 what=$2 rc=0; shift 2
    timeout --kill-after=5 "$limit" "$@" || rc=$?
    [ "$rc" = 0 ] && return 0
    [ "$rc" = 124 ] && fail "$what took longer than $limit s"
    fail "$what failed (exit status $rc)"
}

# lb_field KEY: one field of "lb --status --json" (empty if absent).
lb_field () {
    "$LB" --status --json --dir="$D" 1 2>/dev/null | /usr/bin/python3 -c '
import json, sys
v = json.load(sys.stdin).get(sys.argv[1], "")
print(v if isinstance(v, str) else json.dumps(v))' "$1" 2>/dev/null
}
# image_field KEY: one field of lbd's state file beside the image.
image_field () { sed -n "s/^$1=//p" "$IMG.state" 2>/dev/null; }
filter_up () { [ "$(lb_field filter)" = true ]; }
lb_live () { [ "$(lb_field phase)" = live ]; }
# in_sync: the filter is back to normal, every record is released
# (durable on the server), no block is waiting to be copied, and lbd's
# state file calls the image live and consistent.
in_sync () {
    [ "$(lb_field mode)" = normal ] && [ "$(lb_field phase)" = live ] &&
    [ "$(lb_field out_of_sync_bytes)" = 0 ] &&
    [ "$(lb_field head_seq)" = "$(lb_field released_seq)" ] &&
    [ "$(image_field phase)" = live ] && [ "$(image_field consistent)" = 1 ]
}
progress () {
    printf '   %3d s: lb %s, filter %s, %s bytes out of sync, queue %s bytes\n' \
        $((SECONDS - T0)) "$(lb_field phase)" "$(lb_field mode)" \
        "$(lb_field out_of_sync_bytes)" "$(lb_field queue_used)"
}

# stop NAME PID: SIGTERM, then SIGKILL after 10 s.
stop () {
    local i
    kill "$2" 2>/dev/null || return 0
    for i in $(seq 50); do kill -0 "$2" 2>/dev/null || return 0; sleep 0.2; done
    echo "demo.sh: $1 did not stop within 10 s; killing it" >&2
    kill -9 "$2" 2>/dev/null || :
}
# forget NAME SECONDS: NAME is to exit now; wait for it, at most SECONDS.
forget () {
    local i keep=() pid=
    for i in "${DAEMONS[@]}"; do
        if [ "${i%%:*}" = "$1" ]; then pid=${i#*:}; else keep+=("$i"); fi
    done
    DAEMONS=("${keep[@]}")
    for i in $(seq $(($2 * 5))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    fail "$1 did not exit within $2 s"
}
# At exit, whatever the cause: a failure not yet reported is, then the
# mounts and the daemons are taken down.
on_exit () {
    local rc=$?
    set +e
    trap - ERR
    [ "$rc" != 0 ] && [ -z "$FAILED" ] && report "stopped (exit status $rc)"
    mountpoint -q "$D/mnt" && { umount "$D/mnt" || umount -l "$D/mnt"; }
    mountpoint -q "$D/fuse" && { umount "$D/fuse" || umount -l "$D/fuse"; }
    local i
    for (( i=${#DAEMONS[@]}-1; i>=0; i-- )); do
        stop "${DAEMONS[$i]%%:*}" "${DAEMONS[$i]#*:}"
    done
    [ -n "$FAILED" ] || rm -rf "$D"
}
trap on_exit EXIT
mkdir "$D/fuse" "$D/mnt"
[ -c /dev/fuse ] || fail "no /dev/fuse: the demo mounts the partition through nbdfuse (modprobe fuse)"

say "a 256 MiB partition, served by nbdkit through the livewatch filter (unit 1)" \
    "A file stands in for a disk partition.  nbdkit serves it on a unix socket;" \
    "the livewatch filter sees every write and puts it in a shared-memory channel."
truncate -s 256M "$D/partition"
nbdkit -f --log=stderr -U "$D/nbd.sock" --filter="$FILTER" \
    file "$D/partition" livewatch-unit=1 livewatch-dir="$D" 2>"$D/nbdkit.log" &
DAEMONS+=("nbdkit:$!")
wait_until 20 "nbdkit's channel $D/livewatch-1" filter_up
wait_until 20 "nbdkit's socket $D/nbd.sock" test -S "$D/nbd.sock"
"$LB" --status --dir="$D" 1 | indent
echo "   The filter starts degraded: until a client has compared the partition"
echo "   with its backup, it only marks which blocks change."

say "the backup server: lbd, one client line (TLS with a pre-shared key)" \
    "The key file is any random bytes, identical on both sides and readable by" \
    "root only.  An export line lets lbd serve the image back over NBD."
mkdir -p "$D/server/client1"
(umask 077; head -c 64 /dev/urandom >"$D/backup.key")
cp -p "$D/backup.key" "$D/server/client1/key"
free_port () {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
EXPORT_PORT=$(free_port)
cat >"$D/server/lbd.conf" <<CONF
client name=client1 file=client1/partition key=client1/key listen=127.0.0.1/$PORT type=simple
export listen=127.0.0.1/$EXPORT_PORT
CONF
indent <"$D/server/lbd.conf"
"$LBD" -n "$D/server/lbd.conf" >"$D/lbd-check.log" 2>&1 ||
    fail "lbd -n found the configuration bad"
indent <"$D/lbd-check.log"
"$LBD" --control="$D/lbd.ctl" "$D/server/lbd.conf" 2>"$D/lbd.log" &
DAEMONS+=("lbd:$!")
wait_until 10 "lbd's control socket $D/lbd.ctl" test -S "$D/lbd.ctl"
IMG=$D/server/client1/partition

say "the client: lb 1 PARTITION 127.0.0.1 $PORT KEYFILE" \
    "lb follows the channel of unit 1.  First it compares the partition with the" \
    "image by block hashes and sends only what differs (scanning), then it ships" \
    "every write as it happens (live)."
"$LB" --dir="$D" --retry=1 1 "$D/partition" 127.0.0.1 "$PORT" "$D/backup.key" \
    2>"$D/lb.log" &
DAEMONS+=("lb:$!")
wait_until 60 "lb to finish its first scan and go live" lb_live
"$LB" --status --dir="$D" 1 | indent

say "ext4 on the served partition, a workload, sync" \
    "The filesystem is mounted from nbdkit's export (here nbdfuse and a loop" \
    "device; on a real machine nbd-client and /dev/nbd0), never from the" \
    "partition itself: writes that bypass nbdkit are not captured."
nbdfuse "$D/fuse" --unix "$D/nbd.sock" 2>"$D/nbdfuse.log" &
DAEMONS+=("nbdfuse:$!")
wait_until 20 "nbdfuse to show the export as $D/fuse/nbd" test -e "$D/fuse/nbd"
limited 60 "mkfs.ext4" mkfs.ext4 -q "$D/fuse/nbd"
limited 30 "mounting the filesystem" mount -o loop "$D/fuse/nbd" "$D/mnt"
echo "   copying /usr/share/man and /etc, deleting part, writing 32 MiB of random data"
limited 120 "copying /usr/share/man" cp -a /usr/share/man "$D/mnt/man"
cp -a /etc "$D/mnt/etc" 2>/dev/null || :      # some files may vanish meanwhile
rm -rf "$D/mnt/man/man3"
mv "$D/mnt/etc" "$D/mnt/etc.copy"
limited 60 "writing 32 MiB" dd if=/dev/urandom of="$D/mnt/random" bs=1M count=32 status=none
limited 60 "sync" sync
df -h "$D/mnt" | indent
progress
limited 60 "unmounting the filesystem" umount "$D/mnt"
limited 30 "unmounting nbdfuse" umount "$D/fuse"
forget nbdfuse 10

say "waiting for the backup to catch up" \
    "A burst faster than the queue makes the filter degrade: it then only marks" \
    "blocks, and lb copies them once the burst is over (catching-up).  The backup" \
    "is in sync when every write is durable on the server and nothing is marked."
end=$((SECONDS + 120)) next=$SECONDS
until in_sync; do
    alive
    [ "$SECONDS" -lt "$end" ] || { progress; fail "gave up after 120 s waiting for lb and lbd to be in sync"; }
    [ "$SECONDS" -ge "$next" ] && { progress; next=$((SECONDS + 3)); }
    sleep 0.2
done
progress
"$LB" --status --dir="$D" 1 | indent
"$LBD" --status --control="$D/lbd.ctl" "$D/server/lbd.conf" | indent

say "the backup image against the partition"
cmp "$D/partition" "$IMG" || fail "the backup image differs from the partition"
echo "   the backup image is byte-identical to the partition"
indent <"$IMG.state"

say "a restore: the image read back over NBD from lbd's export" \
    "lbd serves each client's image read-only, with TLS keyed by that client's" \
    "own key; lbd --psk-line prints the PSK file's line (a secret: umask 077)."
(umask 077; "$LBD" --psk-line "$D/server/lbd.conf" client1 >"$D/client1.psk")
U="nbds://client1@127.0.0.1:$EXPORT_PORT/client1?tls-psk-file=$D/client1.psk"
echo "   nbdcopy '$U' restored.img"
limited 60 "nbdinfo on lbd's export" nbdinfo "$U" >"$D/nbdinfo.out"
grep -E 'export-size|description' "$D/nbdinfo.out" | indent || :
limited 120 "nbdcopy from lbd's export" nbdcopy "$U" "$D/restored.img"
cmp "$D/partition" "$D/restored.img" || fail "the restored copy differs from the partition"
echo "   the restored copy is byte-identical to the partition"
limited 60 "e2fsck of the restored copy" e2fsck -fn "$D/restored.img" >"$D/e2fsck.log" 2>&1
indent <"$D/e2fsck.log"

say "what lb and lbd logged"
indent <"$D/lb.log"
indent <"$D/lbd.log"
echo
echo "demo OK: $((SECONDS - T0)) s after the packages and the build"
