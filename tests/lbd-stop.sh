#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# SIGTERM stops cleanly, both ways.
#  - lbd, with lb live and the writes over: lbd tells lb it is shutting
#    down (lb logs that, not a failure) and exits 0; the image's state
#    file says consistent at the seq of the last record, and the image
#    equals the partition; lbd back, lb reconnects by itself and
#    continues without a scan.
#  - lbd, in the middle of writes (each to the next 4 KiB block, each
#    one record): exits 0, and its state file is true: if it says
#    consistent at seq S, the image holds exactly the writes up to S (no
#    later one, none missing); lb continues without a scan and the image
#    converges to the partition.
#  - lb, in the middle of a catch-up and of a scan (through a relay that
#    slows lb's sending, so that both last a while): lb exits 0; it
#    finished the message in flight and said BYE, which lbd logged: no
#    protocol error, no connection lost, no message cut short.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"

port=$(free_port)
one_client
truncate -s 64M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=8 seek=2 conv=notrunc status=none
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "first contact converges" wait_lb_converged "$IMG" 60

lines () { wc -l <"$1"; }
after () { tail -n +"$(( $1 + 1 ))" "$2" | grep -qF -- "$3"; }
# stop_lbd: SIGTERM lbd and wait; its exit status in $rc.
stop_lbd () {
    local pid; pid=$(lbd_pid lbd)
    kill "$pid"; wait "$pid"; rc=$?
}

# --- lbd stops while lb is live and idle ----------------------------------
nbdsh -u "$(uri nbd)" -c 'import os; h.pwrite(os.urandom(1 << 20), 40 << 20); h.flush()'
check "live writes converge" wait_lb_converged "$IMG" 60
ml=$(lines "$T/lb.log"); md=$(lines "$T/lbd.log")
stop_lbd
check "lbd exits 0 on SIGTERM (status $rc)" test "$rc" = 0
check "lbd says goodbye to the session, the image durable" after "$md" "$T/lbd.log" \
    "lbd is shutting down: said goodbye; image durable at seq $(stat_of head_seq) (consistent)"
check "lb logs a clean server shutdown" wait_for 10 after "$ml" "$T/lb.log" \
    "connection to 127.0.0.1/$port ended by the server: server shutting down"
check "... not a failure" sh -c "! tail -n +$((ml + 1)) '$T/lb.log' | grep -qE 'ended: |no welcome'"
check "lbd logged no replacement on its own shutdown" \
    sh -c "! grep -q 'replaced by a newer connection' '$T/lbd.log'"
check "the state says consistent at the last record's seq" \
    test "$(state_of "$IMG" consistent)" = 1 -a "$(state_of "$IMG" seq)" = "$(stat_of head_seq)"
check "... and the image equals the partition" same "$T/disk" "$IMG"
check "lbd removed its control socket" test ! -e "$T/lbd.ctl"

nbdsh -u "$(uri nbd)" -c 'import os; h.pwrite(os.urandom(65536), 50 << 20); h.flush()'
ml=$(lines "$T/lb.log")
start_lbd lbd "$T/srv/lbd.conf"
check "lbd back: lb reconnects and converges" wait_lb_converged "$IMG" 60
check "... without a scan" sh -c "after () { tail -n +\$((\$1 + 1)) \"\$2\" | grep -qF -- \"\$3\"; }
    after $ml '$T/lb.log' 'continuing from seq' && ! after $ml '$T/lb.log' 'full scan'"
check "... equal to the partition" same "$T/disk" "$IMG"

# --- lbd stops in the middle of writes ------------------------------------
# Each write fills the next 4 KiB block from BASE with its number: the
# partition after write K holds blocks 1..K, and nothing after them.
BASE=$((24 << 20)); NW=3000
seq0=$(stat_of head_seq)
NW=$NW BASE=$BASE nbdsh -u "$(uri nbd)" -c '
import os, struct, time
base, n = int(os.environ["BASE"]), int(os.environ["NW"])
for k in range(1, n + 1):
    h.pwrite(struct.pack("<Q", k) * 512, base + (k - 1) * 4096)
    if k % 8 == 0: time.sleep(0.002)
h.flush()
' &
W=$!
cleanup "kill $W"
wait_for 20 sh -c "[ \$('$MIRROR' --stat --dir='$T' 1 | sed -n 's/^head_seq=//p') -ge $((seq0 + 600)) ]"
ml=$(lines "$T/lb.log")
stop_lbd
check "lbd exits 0 on SIGTERM under writes (status $rc)" test "$rc" = 0
# What the state says, against what the image holds.
prefix () {
    /usr/bin/python3 - "$IMG" "$BASE" "$NW" <<'PY'
import struct, sys
img, base, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(img, "rb") as f:
    f.seek(base)
    data = f.read(n * 4096)
k = 0
while k < n and data[k * 4096:(k + 1) * 4096] == struct.pack("<Q", k + 1) * 512:
    k += 1
rest = data[k * 4096:]
print(k if rest.count(0) == len(rest) else -1)
PY
}
k=$(prefix)
if [ "$(state_of "$IMG" consistent)" = 1 ]; then
    s=$(state_of "$IMG" seq)
    check "consistent at seq $s: the image holds exactly writes 1..$((s - seq0)) ($k)" \
        test "$k" = "$((s - seq0))"
else
    diag "the state says inconsistent (phase $(state_of "$IMG" phase)): nothing to compare"
    check "the image holds writes in order, none after a gap ($k)" test "$k" -ge 0
fi
check "lb logs a clean server shutdown" wait_for 10 after "$ml" "$T/lb.log" \
    "ended by the server: server shutting down"
wait "$W"
start_lbd lbd "$T/srv/lbd.conf"
check "lb continues and converges" wait_lb_converged "$IMG" 60
check "... without a scan" sh -c "! tail -n +$((ml + 1)) '$T/lb.log' | grep -q 'full scan'"
check "... equal to the partition" same "$T/disk" "$IMG"

# --- lb stops in the middle of a catch-up, and of a scan -------------------
RELAY=$top_srcdir/tests/relay.py
rport=$(free_port)
/usr/bin/python3 "$RELAY" --rate=8000000 "$rport" 127.0.0.1 "$port" "$T/relay.pid" \
    2>>"$T/relay.log" &
cleanup "kill $!"
wait_for 10 test -s "$T/relay.pid" || bail "relay did not start"
# stop_lb_when NAME PHASE: start lb through the relay, SIGTERM it once it
# logs PHASE; its exit status in $rc.
stop_lb_when () {
    local phase=$1 ml pid
    ml=$(lines "$T/lb.log")
    "$LB" --dir="$T" --retry=1 --defer=0 1 "$T/disk" 127.0.0.1 "$rport" "$T/key" \
        2>>"$T/lb.log" &
    pid=$!
    wait_for 30 after "$ml" "$T/lb.log" "$phase" || diag "lb never logged $phase"
    sleep 0.5
    kill "$pid"; wait "$pid"; rc=$?
}
stop_lb lb
nbdsh -u "$(uri nbd)" -c '
import os
for i in range(32): h.pwrite(os.urandom(1 << 20), i * 2 * (1 << 20))
h.flush()
'
md=$(lines "$T/lbd.log")
stop_lb_when catching-up
check "lb stopped mid catch-up exits 0 (status $rc)" test "$rc" = 0
check "... and lbd logged its BYE" wait_for 10 after "$md" "$T/lbd.log" "): said goodbye"
# A new image: a full scan that sends everything.
kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"
rm -f "$IMG" "$IMG.state"
start_lbd lbd "$T/srv/lbd.conf"
md2=$(lines "$T/lbd.log")
stop_lb_when scanning
check "lb stopped mid scan exits 0 (status $rc)" test "$rc" = 0
check "... and lbd logged its BYE" wait_for 10 after "$md2" "$T/lbd.log" "): said goodbye"
check "lbd logged no protocol error, lost connection or cut message" \
    sh -c "! tail -n +$((md + 1)) '$T/lbd.log' | grep -E 'protocol error|connection lost|inside a message'"
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "lb again: converges" wait_lb_converged "$IMG" 120
check "... equal to the partition" same "$T/disk" "$IMG"
done_testing
