#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# verify= on lbd's client line: lbd sends the schedule in WELCOME, lb
# starts the passes itself once live and due, and tells lbd of each pass
# done (VERIFIED), which lbd logs, keeps in the image's state file and
# shows in lbd --status.
#   - lbd -n refuses a bad duration, naming file and line;
#   - verify=3s: a first pass runs at once (none done yet), finds the
#     damage made behind lbd's back, repairs it (the images identical);
#   - the next pass comes by itself after 3 s, and lbd says it matched;
#   - the time survives an lbd restart (state file), so a restarted lb
#     does not start over: with verify=1h, no pass right after;
#   - a manual lb --verify is reported to lbd too.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh

one_client
sed -i 's/$/ verify=3s/' "$T/srv/lbd.conf"
truncate -s 64M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=8 seek=4 conv=notrunc status=none

# lbd -n on a bad value: file and line named.
printf 'client file=c/x.img key=c/k listen=127.0.0.1/1 verify=7x\n' >"$T/bad.conf"
out=$("$LBD" -n "$T/bad.conf" 2>&1); rc=$?
check "lbd -n refuses verify=7x, naming file, line and key ($out)" \
    sh -c "[ $rc != 0 ] && grep -q '$T/bad.conf:1: .*verify=7x: expected a duration' <<'E'
$out
E"
check "lbd -n accepts verify=3s" test "$("$LBD" -n "$T/srv/lbd.conf" 2>&1)" = "configuration OK"

start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "the scan converges" wait_lb_converged "$IMG" 60
passes () { grep -c "client client1/disk.img: verify pass [0-9]* done" "$T/lbd.log"; }
# The first pass may run before the damage: wait for it, then damage.
check "a first pass runs by itself (none done yet)" wait_for 30 sh -c "[ \$(grep -c 'client client1/disk.img: verify pass [0-9]* done' '$T/lbd.log') -ge 1 ]"
check "... lb said why" grep -q "due (lbd's verify= schedule)" "$T/lb.log"
n=$(passes)
head -c 8192 /dev/urandom | dd of="$IMG" bs=1 seek=$((6 << 20)) conv=notrunc status=none
check "a later pass comes by itself and repairs the damage" \
    wait_for 60 grep -q "client client1/disk.img: verify pass [0-9]* done: 16384 blocks compared, 2 differed, 2 repaired" "$T/lbd.log"
check "... the images are identical again" wait_for 20 same "$T/disk" "$IMG"
check "... and the one after matched" wait_for 30 sh -c "grep 'client client1/disk.img: verify pass' '$T/lbd.log' | tail -1 | grep -q 'all matched'"
check "the passes keep coming ($(passes) so far, $n at the damage)" test "$(passes)" -ge $((n + 2))
st=$("$LBD" --control="$T/lbd.ctl" --status "$T/srv/lbd.conf")
check "lbd --status shows the schedule and the last pass" \
    grep -q "  verify: every 3 s, last 20.*ago" <<<"$st"
check "the state file keeps the time" test -n "$(state_of "$IMG" verified)"

# A long period, lbd restarted: the time comes from the state file.
stop_lb lb
old=$(lbd_pid lbd); kill "$old"; wait "$old" 2>/dev/null
sed -i 's/verify=3s/verify=1h/' "$T/srv/lbd.conf"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "after restarts, lb converges" wait_lb_converged "$IMG" 60
before=$(passes)
sleep 3
check "with verify=1h and a pass done seconds ago, none is due" test "$(passes)" = "$before"
check "... lb was told the schedule" grep -q "lbd asks for a verify pass every 1 h" "$T/lb.log"
"$LB" --verify --dir="$T" 1 >/dev/null
check "a manual lb --verify is reported to lbd too" \
    wait_for 20 sh -c "[ \$(grep -c 'client client1/disk.img: verify pass [0-9]* done' '$T/lbd.log') = $((before + 1)) ]"
done_testing
