#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Safety rails against a misconfigured client (files; safety-block.sh
# has the block devices): lb refuses, with exit status 2, a DEVICE that
# is not the file the unit serves (bigger, smaller, same size but
# another file); lbd refuses a second partition with the same key and
# name, and a partition smaller than the image, until the operator's
# lbd --rebind; a refused client never changes the image's bytes.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit

port=$(free_port)
one_client
truncate -s 16M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=4 seek=3 conv=notrunc status=none
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
check "the filter names the file it serves" \
    test "$(stat_of served)" = file -a "$(stat_of served_path)" = "$T/disk"

start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "the right DEVICE: live" wait_lb_converged "$IMG" 60
check "the image holds the disk" same "$T/disk" "$IMG"
part=$(state_of "$IMG" partition)
check "the image is bound to a partition identity ($part)" \
    grep -qE '^[0-9a-f]{16}$' <<<"$part"
# As doc/protocol.md ("Partition identity") derives it.
want=$(/usr/bin/python3 -c '
import hashlib, socket, sys
try: host = "machine-id " + open("/etc/machine-id").readline().strip()
except OSError: host = ""
if host == "machine-id ": host = ""
if not host: host = "hostname " + socket.gethostname()
d = hashlib.sha256(("livebackup partition 1\n%s\npath %s\n" % (host, sys.argv[1])).encode()).digest()
print("%016x" % (int.from_bytes(d[:8], "little") or 1))' "$T/disk")
check "... the one protocol.md describes ($want)" test "$part" = "$want"
stop_lb lb

# sums: the image's bytes and its state file.
sums () { md5sum <"$IMG"; md5sum <"$IMG.state"; }
before=$(sums)
unchanged () { check "$1: the image and its state are unchanged" test "$(sums)" = "$before"; }

# refused STATUS MESSAGE DESC ARGS...: lb ARGS exits STATUS within 20 s,
# logging MESSAGE (a fixed string); what it logged in $out.
refused () {
    local want=$1 msg=$2 desc=$3 rc; shift 3
    out=$(timeout 20 "$LB" --retry=1 "$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && printf '%s\n' "$out" | grep -qF -- "$msg"; then
        ok "$desc: exit $want"
    else
        not_ok "$desc: exit $want"; diag "exit $rc: $out"
    fi
}
args () { echo 127.0.0.1 "$port" "$T/key"; }

truncate -s 32M "$T/big"
refused 2 "DEVICE $T/big is 33554432 bytes but unit 1 serves 16777216 ($T/disk): not the partition the unit serves" \
    "a bigger DEVICE" --dir="$T" 1 "$T/big" $(args)
unchanged "a bigger DEVICE"
truncate -s 8M "$T/small"
refused 2 "DEVICE $T/small is 8388608 bytes but unit 1 serves 16777216" \
    "a smaller DEVICE" --dir="$T" 1 "$T/small" $(args)
unchanged "a smaller DEVICE"
cp "$T/disk" "$T/copy"
refused 2 "DEVICE $T/copy is another file (device" \
    "a DEVICE of the same size and content, but another file" --dir="$T" 1 "$T/copy" $(args)
unchanged "another file"
# A second name for the very file is the file.
ln -s "$T/disk" "$T/link"
start_lb link "$T" "$T/link" "$port" "$T/key"
check "a symbolic link to the served file is accepted" \
    logged 20 "$T/link.log" "connected to 127.0.0.1/$port"
check "... and the image stays live" wait_lb_converged "$IMG" 60
stop_lb link
check "... without a warning" sh -c "! grep -q warning '$T/link.log'"
before=$(sums)

# A plugin the filter cannot see a file of: sizes only, and lb says so.
mkdir -p "$T/mem"
nbdkit -U "$T/mem.sock" -P "$T/mem.pid" --filter="$FILTER" memory 16M \
    livewatch-unit=1 livewatch-dir="$T/mem" 2>>"$T/mem.log" &
wait_for 20 test -s "$T/mem.pid" || bail "nbdkit memory did not start"
cleanup "kill \$(cat $T/mem.pid)"
wait_for 20 "$MIRROR" --stat --dir="$T/mem" 1 || bail "memory channel not ready"
check "another plugin: the filter publishes 'unknown'" \
    test "$("$MIRROR" --stat --dir="$T/mem" 1 | sed -n 's/^served=//p')" = unknown
refused 2 "DEVICE $T/big is 33554432 bytes but unit 1 serves 16777216" \
    "another plugin: a DEVICE of another size is still refused" \
    --dir="$T/mem" --control="$T/mem.ctl" 1 "$T/big" $(args)
truncate -s 16M "$T/sixteen"
"$LB" --dir="$T/mem" --control="$T/mem.ctl" --retry=1 1 "$T/sixteen" 127.0.0.1 1 "$T/key" \
    2>"$T/mem-lb.log" &
mem_lb=$!
check "another plugin: lb warns that only the size was checked" \
    logged 20 "$T/mem-lb.log" "warning: unit 1's filter does not say which file it serves"
check "... and runs on" kill -0 $mem_lb
kill $mem_lb; wait $mem_lb

# A second partition, same key, same client name: lbd refuses it.
truncate -s 16M "$T/other"
dd if=/dev/urandom of="$T/other" bs=1M count=2 conv=notrunc status=none
start_unit nbd2 "$T/u2" "$T/other"
lines=$(wc -l <"$T/lbd.log")
refused 2 "127.0.0.1/$port refused this partition" \
    "a second partition with the same key and name" \
    --dir="$T/u2" --control="$T/u2.ctl" 1 "$T/other" $(args)
check "... lb logs the server's reason" \
    grep -qF "the image of client client1/disk.img is bound to another partition ($part" <<<"$out"
check "... lbd logs the client and both identities" \
    sh -c "tail -n +$((lines + 1)) '$T/lbd.log' | grep -q 'client client1/disk.img (127.0.0.1:[0-9]*): refused: partition [0-9a-f]\{16\} (16777216 bytes) is not the one image $IMG is bound to ($part, 16777216 bytes)'"
unchanged "a second partition"
check "lbd still runs" kill -0 "$(lbd_pid lbd)"
# ... and while the partition's own lb runs, its session is left alone.
start_lb own "$T" "$T/disk" "$port" "$T/key"
check "the partition's own lb is connected" logged 20 "$T/own.log" "connected to 127.0.0.1/$port"
refused 2 "127.0.0.1/$port refused this partition" \
    "the second partition, while the first one's lb runs" \
    --dir="$T/u2" --control="$T/u2.ctl" 1 "$T/other" $(args)
check "... the running session was not replaced" \
    sh -c "! grep -q 'replacing the connection' '$T/lbd.log' && [ \$(grep -c 'connected to 127.0.0.1' '$T/own.log') = 1 ]"
check "... and goes on" kill -0 "$(lb_pid own)"
stop_lb own
before=$(sums)

# A smaller partition under the same identity (the same file, cut).
stop_nbdkit nbd
truncate -s 8M "$T/disk"
start_nbdkit nbd "$T/disk"
refused 2 "this partition (8388608 bytes) is smaller than client client1/disk.img's image (16777216 bytes)" \
    "the partition shrank" --dir="$T" 1 "$T/disk" $(args)
check "... lbd logs it" logged 5 "$T/lbd.log" \
    "refused: partition $part is 8388608 bytes, smaller than image $IMG (16777216 bytes)"
unchanged "a smaller partition"

# The operator accepts it.
out=$("$LBD" --rebind "$T/srv/lbd.conf" client1/disk.img 2>&1); rc=$?
check "lbd --rebind: exit 0 ($out)" test "$rc" = 0
check "... it says what it does" grep -qF "client client1/disk.img: the next partition to connect binds image $IMG" <<<"$out"
out=$("$LBD" --rebind "$T/srv/lbd.conf" nosuch 2>&1); rc=$?
check "lbd --rebind of an unknown client: exit 2 ($out)" \
    test "$rc" = 2 -a "$out" = "lbd: $T/srv/lbd.conf: no client named 'nosuch'"
unchanged "lbd --rebind itself"
start_lb lb2 "$T" "$T/disk" "$port" "$T/key"
check "after --rebind the smaller partition is accepted and live" wait_lb_converged "$IMG" 60
check "... the image was cut to 8 MiB" test "$(stat -c %s "$IMG")" = 8388608
check "... and holds the partition" same "$T/disk" "$IMG"
check "... the permission is used up" test ! -e "$IMG.rebind"
check "... lbd logged the rebinding" logged 5 "$T/lbd.log" "rebound, as the operator allowed"
check "... still bound to the same identity" test "$(state_of "$IMG" partition)" = "$part"
stop_lb lb2

# After --rebind, the other partition takes the image over.
"$LBD" --rebind "$T/srv/lbd.conf" client1/disk.img >/dev/null
start_lb lb3 "$T/u2" "$T/other" "$port" "$T/key" --control="$T/u2.ctl"
check "after --rebind another partition binds the image" \
    wait_for 60 converged_in "$T/u2" "$IMG"
check "... which holds it" wait_for 10 same "$T/other" "$IMG"
other=$(state_of "$IMG" partition)
check "... under its own identity ($other)" test -n "$other" -a "$other" != "$part"
stop_lb lb3

# A state file of lbd before identities: the next partition binds it.
before=$(md5sum <"$IMG")
sed -i '/^partition=/d' "$IMG.state"
start_lb lb4 "$T/u2" "$T/other" "$port" "$T/key" --control="$T/u2.ctl"
check "a state file without an identity is adopted" \
    logged 20 "$T/lbd.log" "image $IMG bound to partition $other"
check "... and stays live" wait_for 60 converged_in "$T/u2" "$IMG"
stop_lb lb4
check "... its image unchanged" test "$(md5sum <"$IMG")" = "$before"
done_testing
