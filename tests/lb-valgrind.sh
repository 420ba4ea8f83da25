#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb and lbd under valgrind (memcheck) through a full session: first
# contact with a scan, live writes, an lbd restart and reconnect, reloads
# of lbd's config (a client and an address added, then removed, then a
# broken file refused) and of lb's key, then a clean shutdown of both.
# Any memory error or definite leak fails.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires valgrind

VG="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no -q"
port=$(free_port)
mkdir -p "$T/srv"
make_key "$T/key"; cp "$T/key" "$T/srv/key"
cat >"$T/srv/lbd.conf" <<CONF
client file=disk.img key=key listen=127.0.0.1/$port type=simple
CONF
IMG=$T/srv/disk.img
truncate -s 16M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=2 seek=3 conv=notrunc status=none
start_nbdkit nbd "$T/disk"

run_lbd () {
    $VG --log-file="$T/vg-lbd.%p" "$LBD" --control="$T/lbd.ctl" "$T/srv/lbd.conf" 2>>"$T/lbd.log" &
    LBDPID=$!
    cleanup "kill -9 $LBDPID"
    wait_for 60 test -S "$T/lbd.ctl" || bail "lbd did not start under valgrind"
}
run_lbd
$VG --log-file="$T/vg-lb.%p" "$LB" --dir="$T" --retry=1 1 "$T/disk" 127.0.0.1 "$port" "$T/key" 2>>"$T/lb.log" &
LBPID=$!
cleanup "kill -9 $LBPID"

check "first contact converges under valgrind" wait_lb_converged "$IMG" 120
nbdsh -u "$(uri nbd)" -c '
import os
h.pwrite(os.urandom(1 << 20), 1 << 20)
h.zero(65536, 8 << 20)
h.pwrite(b"\0" * 65536, 9 << 20)
h.flush()
'
check "live writes converge under valgrind" wait_lb_converged "$IMG" 60
# lb's control thread and status document under memcheck too.
lb_answers_live () {
    "$LB" --status --json --dir="$T" 1 | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["lb_running"] is True and d["phase"] == "live", d'
}
check "lb under valgrind answers lb --status" wait_for 20 lb_answers_live
check "image equals the partition" same "$T/disk" "$IMG"

# lbd restarted under lb's feet.
kill "$LBDPID"; wait "$LBDPID"; rc=$?
check "lbd exits cleanly on SIGTERM under valgrind (status $rc)" test "$rc" = 0
rm -f "$T/lbd.ctl"
nbdsh -u "$(uri nbd)" -c 'import os; h.pwrite(os.urandom(4096), 12 << 20); h.flush()'
run_lbd
check "lb reconnects and converges" wait_lb_converged "$IMG" 120
check "image equals the partition after the reconnect" same "$T/disk" "$IMG"

# Reloads: what a reload makes, and frees, under memcheck.
reloaded () { wait_for 60 grep -qF -- "$1" "$T/lbd.log"; }
make_key "$T/srv/key2"
port2=$(free_port)
cp "$T/srv/lbd.conf" "$T/srv/lbd.conf.1"
echo "client file=disk2.img key=key2 listen=127.0.0.1/$port2 name=two" >>"$T/srv/lbd.conf"
echo "export listen=127.0.0.1/$(free_port)" >>"$T/srv/lbd.conf"
kill -HUP "$LBDPID"
check "lbd reloads under valgrind: a client and addresses added" \
    reloaded "(1 added, 0 changed, 0 removed)"
cp "$T/srv/lbd.conf.1" "$T/srv/lbd.conf"
kill -HUP "$LBDPID"
check "... then removed" reloaded "(0 added, 0 changed, 1 removed)"
echo "client file=disk3.img key=nokey listen=127.0.0.1/$port2" >>"$T/srv/lbd.conf"
kill -HUP "$LBDPID"
check "... then a broken file refused" reloaded "not reloaded: the running configuration stays"
cp "$T/srv/lbd.conf.1" "$T/srv/lbd.conf"
kill -HUP "$LBPID"
check "lb reads its key again under valgrind" wait_for 30 grep -q "read again: the same key" "$T/lb.log"
nbdsh -u "$(uri nbd)" -c 'import os; h.pwrite(os.urandom(4096), 13 << 20); h.flush()'
check "lb, untouched, still converges" wait_lb_converged "$IMG" 120
check "... in the one session it had" test "$(grep -c 'connected to' "$T/lb.log")" = 2

kill "$LBPID"; wait "$LBPID"; rc=$?
check "lb exits cleanly on SIGTERM under valgrind (status $rc)" test "$rc" = 0
kill "$LBDPID"; wait "$LBDPID"; rc=$?
check "lbd exits cleanly on SIGTERM under valgrind (status $rc)" test "$rc" = 0
# With -q valgrind writes only what it finds.
errs=$(cat "$T"/vg-* 2>/dev/null | grep -c .)
check "valgrind reports no errors and no definite leaks" test "$errs" = 0
[ "$errs" = 0 ] || cat "$T"/vg-* | sed 's/^/# /' | head -60

done_testing
