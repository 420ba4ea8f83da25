#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Restore, the whole round trip: ext4 made and written through the
# filter (nbdfuse and a loop device), replicated by lb to lbd over TLS,
# then restored from lbd's export with standard tools over TLS-PSK:
#  - lbd --psk-line prints the client's PSK-file line;
#  - nbdinfo --list shows only the identity's own export (and, on a
#    tls=off loopback export, every client);
#  - nbdcopy copies the export into a new file: byte-identical to the
#    partition, sparse, and e2fsck -fn passes on it;
#  - nbdfuse shows the export as a file, mounted read-only through a
#    loop device: every file's checksum equals the original's;
#  - qemu-img converts it too.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdfuse; requires nbdcopy; requires nbdinfo
requires mkfs.ext4; requires e2fsck; requires fusermount; requires_root
[ -c /dev/fuse ] || skip "no /dev/fuse"
losetup -f >/dev/null 2>&1 || skip "no free loop device"

port=$(free_port); xport=$(free_port); oport=$(free_port)
SRV=$T/srv
mkdir -p "$SRV/c1" "$SRV/c2" "$T/fuse" "$T/mnt" "$T/rfuse" "$T/rmnt"
make_key "$T/key"; cp "$T/key" "$SRV/c1/key"
make_key "$SRV/c2/key"
cat >"$SRV/lbd.conf" <<CONF
client name=c1 file=c1/disk.img key=c1/key listen=127.0.0.1/$port
client name=c2 file=c2/disk.img key=c2/key listen=127.0.0.1/$port
export listen=127.0.0.1/$xport
export listen=127.0.0.1/$oport tls=off
CONF
IMG=$SRV/c1/disk.img
# c2 replicated earlier: its image is there, and consistent.
truncate -s 16M "$SRV/c2/disk.img"
printf 'epoch=0000000000000001\nseq=1\nphase=live\nconsistent=1\nlast_consistent=%s\nsize=16777216\n' \
    "$(date +%s)" >"$SRV/c2/disk.img.state"
out=$("$LBD" -n "$SRV/lbd.conf" 2>&1)
check "lbd -n accepts export lines" test "$out" = "configuration OK"

"$LBD" --psk-line "$SRV/lbd.conf" c1 >"$T/psk"
check "lbd --psk-line prints NAME:SHA-256 of the key file" \
    test "$(cat "$T/psk")" = "c1:$(sha256sum <"$T/key" | cut -c1-64)"
U="nbds://c1@127.0.0.1:$xport/c1?tls-psk-file=$T/psk"

# unmount_all: at exit, whatever happened: loop mounts, then fuse, then
# nbdfuse (registered after the servers, so it runs before they stop).
unmount_all () {
    unmount_loops "$T/mnt" "$T/rmnt"
    unmount_fuses "$T/fuse" "$T/rfuse"
    kill $(cat "$T"/*.fusepid 2>/dev/null) 2>/dev/null
    return 0
}

truncate -s 256M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$SRV/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1
check "first contact converges" wait_lb_converged "$IMG" 60
cleanup unmount_all

# --- ext4 written through the filter -------------------------------------
fuse_start "$T/fuse" || bail "nbdfuse did not start"
mkfs.ext4 -q "$T/fuse/nbd" || bail "mkfs.ext4 failed"
mount -o loop "$T/fuse/nbd" "$T/mnt" || bail "mount failed"
M=$T/mnt
work () (
    set -e
    cp -a /usr/share/man/man5 "$M/man5"
    cp -a /usr/share/man/man8 "$M/man8"
    mkdir -p "$M/deep/a/b"
    cp -a /etc/ssl "$M/deep/a/b/ssl" 2>/dev/null || cp -a /usr/share/man/man7 "$M/deep/a/b/ssl"
    dd if=/dev/urandom of="$M/big" bs=1M count=24 status=none
    dd if=/dev/zero of="$M/zeros" bs=1M count=8 status=none
    mv "$M/man8" "$M/man8.old"
    sync
)
check "ext4 made and written through the filter" work
(cd "$M" && find . -type f -print0 | sort -z | xargs -0 md5sum) >"$T/files.md5"
nfiles=$(wc -l <"$T/files.md5")
umount "$M" && fuse_stop "$T/fuse"
check "unmounted; lb converges" wait_lb_converged "$IMG" 90
check "the image equals the partition" same "$T/disk" "$IMG"

# --- listing -------------------------------------------------------------
exports () { nbdinfo --list "$1" 2>>"$T/nbdinfo.log" | sed -n 's/^export="\(.*\)":$/\1/p' | tr '\n' ' '; }
check "nbdinfo --list over TLS-PSK shows only c1's export" \
    test "$(exports "nbds://c1@127.0.0.1:$xport/?tls-psk-file=$T/psk")" = "c1 "
ls=$(exports "nbd://127.0.0.1:$oport/")
diag "tls=off export lists: $ls"
check "nbdinfo --list on the tls=off loopback export shows both clients" \
    test "$ls" = "c1 c2 "
info=$(nbdinfo "$U" 2>&1)
info_ok () {
    grep -q "is_read_only: true" <<<"$info" &&
        grep -q "export-size: 268435456" <<<"$info" &&
        grep -q "with TLS" <<<"$info"
}
check "nbdinfo: read-only, 256M, TLS" info_ok
check "nbdinfo: the description says what is served" \
    grep -q "description: livebackup image of c1: the live image" <<<"$info"

# --- the whole partition back -------------------------------------------
t0=$(date +%s.%N)
check "nbdcopy over TLS-PSK restores into a new file" \
    nbdcopy "$U" "$T/restored.img"
t1=$(date +%s.%N)
check "the restored file equals the partition" same "$T/disk" "$T/restored.img"
alloc=$(du -k "$T/restored.img" | cut -f1)
diag "nbdcopy: $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") s, restored file allocates $alloc KiB of 262144"
check "the restored file is sparse" test "$alloc" -lt 131072
check "e2fsck -fn passes on the restored file" \
    sh -c "e2fsck -fn '$T/restored.img' >'$T/fsck.log' 2>&1"

# --- one file back: a read-only mount of the export ----------------------
# libnbd 1.14's nbdfuse refuses ?tls-psk-file= in a URI (a local file);
# then nbdkit's nbd plugin, run by nbdfuse, makes the TLS connection.
nbdfuse -r "$T/rfuse" "$U" 2>>"$T/rfuse.log" &
echo $! >"$T/rfuse.fusepid"
if ! wait_for 10 test -e "$T/rfuse/nbd"; then
    kill "$(cat "$T/rfuse.fusepid")" 2>/dev/null
    mountpoint -q "$T/rfuse" && fusermount -u "$T/rfuse"
    diag "nbdfuse URI: $(tail -1 "$T/rfuse.log"); using nbdkit's nbd plugin"
    nbdfuse -r "$T/rfuse" [ nbdkit -r nbd hostname=127.0.0.1 port="$xport" \
        export=c1 tls=require tls-psk="$T/psk" tls-username=c1 ] \
        2>>"$T/rfuse.log" &
    echo $! >"$T/rfuse.fusepid"
    wait_for 20 test -e "$T/rfuse/nbd"
fi
check "nbdfuse -r shows the export as a file" test -e "$T/rfuse/nbd"
check "mounted read-only through a loop device (noload)" \
    mount -o loop,ro,noload "$T/rfuse/nbd" "$T/rmnt"
files_ok () {
    (cd "$T/rmnt" && md5sum --quiet -c "$T/files.md5") >"$T/md5.log" 2>&1 ||
        { head -5 "$T/md5.log" | sed 's/^/#   /'; return 1; }
}
check "every file ($nfiles) has the original's checksum" files_ok
st=$("$LBD" --status --control="$T/lbd.ctl" "$SRV/lbd.conf")
check "lbd --status counts the open export connection" \
    grep -q "export connections: 1 open" <<<"$st"
umount "$T/rmnt"
check "unmounted; nbdfuse ends" fuse_stop "$T/rfuse"

# --- qemu-img, if there ---------------------------------------------------
if command -v qemu-img >/dev/null; then
    mkdir -p "$T/qpsk"; cp "$T/psk" "$T/qpsk/keys.psk"
    check "qemu-img convert over TLS-PSK restores it too" \
        qemu-img convert --object tls-creds-psk,id=tls0,dir="$T/qpsk",username=c1,endpoint=client \
            --image-opts "driver=nbd,host=127.0.0.1,port=$xport,export=c1,tls-creds=tls0" \
            -O raw "$T/qemu.img"
    check "... byte-identical" same "$T/disk" "$T/qemu.img"
fi

check "no export connection or overlay is left" \
    wait_for 10 sh -c "! ls '$IMG'.snap-* >/dev/null 2>&1 && '$LBD' --status --control='$T/lbd.ctl' '$SRV/lbd.conf' | grep -q 'export connections: 0 open'"

done_testing
