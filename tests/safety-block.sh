#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Safety rails with block devices (loop devices): lb refuses, with exit
# status 2, a DEVICE of another size, another block device of the same
# size, and the regular file under the served loop device; it accepts
# the served device and warns when that device is mounted directly
# (writes there bypass nbdkit).  The image's bytes stay unchanged by
# every refusal.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit
requires losetup
requires mkfs.ext4
requires_root

for f in f1 f2; do
    truncate -s 16M "$T/$f"
    dd if=/dev/urandom of="$T/$f" bs=1M count=3 seek=2 conv=notrunc status=none
done
truncate -s 8M "$T/f3"
# Attached here, not in a subshell, so that the cleanups register.
L1=$(losetup -f --show "$T/f1") || skip "no loop device"; cleanup "losetup -d $L1"
L2=$(losetup -f --show "$T/f2") || skip "no loop device"; cleanup "losetup -d $L2"
L3=$(losetup -f --show "$T/f3") || skip "no loop device"; cleanup "losetup -d $L3"
diag "loop devices: $L1 (served) $L2 (same size) $L3 (8 MiB)"

port=$(free_port)
one_client
start_nbdkit nbd "$L1"
check "the filter serves block device $L1" \
    test "$(stat_of served)" = block -a "$(stat_of served_path)" = "$L1"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$L1" "$port" "$T/key"
check "lb on the served block device: live" wait_lb_converged "$IMG" 60
check "... the image holds it" cmp -s "$L1" "$IMG"
stop_lb lb
check "... no warning that it is mounted" sh -c "! grep -q 'is mounted at' '$T/lb.log'"

sums () { md5sum <"$IMG"; md5sum <"$IMG.state"; }
before=$(sums)
refused () {
    local want=$1 msg=$2 desc=$3 out rc; shift 3
    out=$(timeout 20 "$LB" --retry=1 "$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && printf '%s\n' "$out" | grep -qF -- "$msg"; then
        ok "$desc: exit $want"
    else
        not_ok "$desc: exit $want"; diag "exit $rc: $out"
    fi
    check "$desc: the image and its state are unchanged" test "$(sums)" = "$before"
}
devno () { printf '%d:%d' "0x$(stat -c %t "$1")" "0x$(stat -c %T "$1")"; }
refused 2 "DEVICE $L3 is 8388608 bytes but unit 1 serves 16777216 ($L1)" \
    "a block device of another size" --dir="$T" 1 "$L3" 127.0.0.1 "$port" "$T/key"
refused 2 "DEVICE $L2 is block device $(devno "$L2") but unit 1 serves the block device $(devno "$L1") ($L1)" \
    "another block device of the same size" --dir="$T" 1 "$L2" 127.0.0.1 "$port" "$T/key"
refused 2 "DEVICE $T/f1 is a regular file but unit 1 serves the block device $(devno "$L1")" \
    "the file under the served loop device" --dir="$T" 1 "$T/f1" 127.0.0.1 "$port" "$T/key"

# Mounted directly: what is written there bypasses nbdkit.
mkdir "$T/mnt"
mkfs.ext4 -q -F "$L1" || bail "mkfs.ext4 $L1"
mount -t ext4 "$L1" "$T/mnt" || skip "cannot mount $L1"
cleanup "umount $T/mnt"
start_lb lb2 "$T" "$L1" "$port" "$T/key"
check "lb warns that DEVICE is mounted directly" \
    logged 20 "$T/lb2.log" "warning: DEVICE $L1 is mounted at $T/mnt: writes made there bypass nbdkit"
check "... and runs on (a warning, not a refusal)" kill -0 "$(lb_pid lb2)"
stop_lb lb2
done_testing
