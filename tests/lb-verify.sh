#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb --verify: refused clearly without a running lb or a live unit (exit
# 2); a matching pair (exit 0, every block compared); an image damaged
# behind lbd's back at known offsets (exactly those ranges reported and
# repaired, exit 1, then identical); and a verify while a writer keeps
# rewriting the same blocks (no block reported, and identical once the
# writer stops); a verify cut by a catch-up (done once live again), and
# one whose session ends (exit 2).
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh

one_client
truncate -s 64M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=8 seek=4 conv=notrunc status=none

# verify [OPTIONS]: lb --verify for unit 1 in $T; output in $VO, its
# standard error in $VE, exit in $RC.
verify () { VO=$("$LB" --verify --dir="$T" "$@" 1 2>"$T/verify.err"); RC=$?; VE=$(cat "$T/verify.err"); }
# json_ok PYTHON: the last JSON answer ($VO) makes PYTHON's asserts (on d) hold.
json_ok () { /usr/bin/python3 -c "import json,sys; d=json.loads(sys.argv[1]); $1" "$VO"; }
not () { ! "$@"; }
# verifying: lb --status shows a verify pass running.
verifying () { "$LB" --status --json --dir="$T" 1 | grep -q '"verify_pass":'; }
# verify_start: lb --verify --json in the background; verify_end waits
# for it: its output in $VO, its exit in $RC.
verify_start () {
    "$LB" --verify --json --dir="$T" 1 >"$T/cut.out" 2>"$T/cut.err" &
    VERIFY=$!
    cleanup "kill -9 $VERIFY"
}
verify_end () {
    wait "$VERIFY"; RC=$?
    VO=$(cat "$T/cut.out")
    diag "$VO $(cat "$T/cut.err")"
}

# --- refused --------------------------------------------------------------
verify
check "no lb running: exit 2" test "$RC" = 2
check "... saying that no lb answers for the unit" \
    grep -q "^lb: --verify: unit 1: no lb answers for it" <<<"$VE"

start_nbdkit nbd "$T/disk"
start_lb lb "$T" "$T/disk" "$port" "$T/key"
connecting () { "$LB" --status --dir="$T" 1 | grep -q "phase: connecting"; }
check "lb without lbd is connecting" wait_for 20 connecting
verify --json
check "not live (no lbd): exit 2" test "$RC" = 2
diag "$VE"
check "... saying why, and that it needs live mode" \
    grep -q "^lb: --verify: unit 1: verify refused: the unit is not live (not connected to lbd): a verify compares in live mode only" <<<"$VE"
check "... and nothing on standard output" test -z "$VO"

start_lbd lbd "$T/srv/lbd.conf"
check "lbd started: the scan converges" wait_lb_converged "$IMG" 60
check "... image equals the partition" same "$T/disk" "$IMG"
lb_live () { "$LB" --status --dir="$T" 1 >/dev/null; }
check "lb says live" wait_for 20 lb_live

# --- (a) a matching pair --------------------------------------------------
verify
diag "$VO"
check "a matching pair: exit 0" test "$RC" = 0
check "... text: every block compared, none differed" \
    grep -qx "  compared 16384 blocks of 4096 bytes (100.0% of the device looked at): 0 differed, 0 repaired, 0 skipped as busy (written during every try)" <<<"$VO"
verify --json
check "... JSON: done, 16384 blocks matched, no range" json_ok '
assert d["state"] == "done" and d["live"] is True and d["unit"] == 1, d
assert d["compared_blocks"] == d["matched_blocks"] == 16384, d
assert d["mismatched_blocks"] == d["repaired_blocks"] == d["busy_blocks"] == 0, d
assert d["ranges"] == [] and d["block_size"] == 4096, d
assert d["looked_bytes"] == d["device_bytes"] == 64 << 20 and d["percent"] == 100, d
'
check "lb logged the pass" grep -q "verify pass [0-9]* done: 16384 blocks of 4096 bytes compared, 0 differed" "$T/lb.log"

# --- (b) damage behind lbd's back -----------------------------------------
# 4 KiB where both read zeroes, 12 KiB inside the data, and 100 bytes
# off any 4 KiB boundary (its 4 KiB block is what is reported).
damage () { head -c "$2" /dev/urandom | dd of="$IMG" bs=1 seek="$1" conv=notrunc status=none; }
damage $((1 << 20)) 4096
damage $(((5 << 20) + 4096)) 12288
damage $(((40 << 20) + 10)) 100
check "the image now differs from the partition" not same "$T/disk" "$IMG"
verify --json
diag "$VO"
check "a damaged image: exit 1" test "$RC" = 1
check "... exactly the damaged ranges, each repaired" json_ok '
want = [(1 << 20, 4096), ((5 << 20) + 4096, 12288), (40 << 20, 4096)]
assert [(r["offset"], r["length"]) for r in d["ranges"]] == want, d["ranges"]
assert all(r["repaired"] for r in d["ranges"]), d
assert d["mismatched_blocks"] == d["repaired_blocks"] == 5, d
assert d["compared_blocks"] == 16384 and d["busy_blocks"] == 0, d
'
check "... and the image equals the partition again" same "$T/disk" "$IMG"
check "... its state consistent and live" \
    test "$(state_of "$IMG" consistent)/$(state_of "$IMG" phase)" = 1/live
check "lb logged each repair" \
    grep -q "the image differs from the device at offset 5246976, 12288 bytes; repairing" "$T/lb.log"
verify
check "verify again: exit 0" test "$RC" = 0
check "... text: 0 differed" grep -q ": 0 differed, 0 repaired" <<<"$VO"

# Damage while lbd is stopped: the next session continues, the verify
# finds it.
stop_lbd () { kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)" 2>/dev/null; }
stop_lbd
damage $((60 << 20)) 8192
start_lbd lbd "$T/srv/lbd.conf"
check "lbd restarted: live again" wait_for 30 lb_live
verify
diag "$VO"
check "damage made while lbd was stopped: exit 1" test "$RC" = 1
check "... text: that range, repaired" \
    grep -qx "  differed: offset 62914560, 8192 bytes, repaired" <<<"$VO"
check "... the image equals the partition" same "$T/disk" "$IMG"

# --- (c) a writer on the same blocks during the verify --------------------
# Hot blocks (4 KiB rewrites, and 64 KiB around them across hash
# blocks), with flushes, until told to stop (bounded).
touch "$T/writing"
writes0=$(stat_of writes)
T=$T nbdsh -u "$(uri nbd)" -c '
import os
hot = [i * (4 << 20) + 8192 * (i % 3) for i in range(16)]
n = 0
while os.path.exists(os.environ["T"] + "/writing") and n < 400000:
    off = hot[n % 16]
    h.pwrite(os.urandom(4096), off)
    if n % 5 == 0:
        h.pwrite(os.urandom(65536), (off & ~65535) + 61440 * (n % 2))
    if n % 50 == 0:
        h.flush()
    n += 1
print(n)
' >"$T/writer.out" 2>&1 &
WRITER=$!
cleanup "kill -9 $WRITER"
writing () { [ "$(stat_of writes)" -gt $((writes0 + 100)) ]; }
check "the writer writes" wait_for 20 writing
fails=0 suspects=0
for i in 1 2 3; do
    verify --json
    diag "verify under writes: exit $RC: $(json_ok 'print(d["compared_blocks"], "compared,", d["suspect_blocks"], "suspect,", d["busy_blocks"], "busy,", d["ranges"])' 2>&1)"
    [ "$RC" = 0 ] && json_ok 'assert d["ranges"] == [] and d["mismatched_blocks"] == 0' || fails=$((fails + 1))
    suspects=$((suspects + $(json_ok 'print(d["suspect_blocks"])' 2>/dev/null || echo 0)))
done
check "three verifies under writes: no block reported, exit 0 each" test "$fails" = 0
diag "blocks that differed at the first look (writes in flight): $suspects"
check "the writer was still writing when they were over" kill -0 "$WRITER"
rm -f "$T/writing"
wait "$WRITER"
check "the writer stopped cleanly" test $? = 0
diag "writes: $(cat "$T/writer.out")"
check "the writes converge" wait_lb_converged "$IMG" 60
check "... the image equals the partition" same "$T/disk" "$IMG"
verify
check "a last verify: exit 0" test "$RC" = 0

# --- a verify cut by a catch-up goes on once live again -------------------
# lbd stopped while the verify waits for its hashes: a burst fills the
# small ring (lb cannot send), the filter degrades; lbd back, lb catches
# up, and the verify, its work in flight dropped, goes on and is done.
stop_lb lb
stop_nbdkit nbd
truncate -s 512M "$T/disk"
start_nbdkit nbd "$T/disk" livewatch-queue=256K
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "a larger partition, a small ring: live" wait_lb_converged "$IMG" 120
check "... lb live" wait_for 30 lb_live
# lbd stopped first: its answers held, the pass cannot end before the
# burst (a pass over 512 MiB takes well under a second otherwise).
kill -STOP "$(lbd_pid lbd)"
verify_start
check "lb --status shows the pass running" wait_for 30 verifying
nbdsh -u "$(uri nbd)" -c '
import os
for i in range(64): h.pwrite(os.urandom(1 << 20), (64 << 20) + (i << 20))
h.flush()
'
check "lbd stopped, a burst: the filter degrades" test "$(stat_of mode)" = degraded
kill -CONT "$(lbd_pid lbd)"
verify_end
check "the verify cut by the catch-up: exit 0" test "$RC" = 0
check "... done, every block compared, none differed" json_ok '
assert d["state"] == "done" and d["compared_blocks"] == 131072, d
assert d["mismatched_blocks"] == 0 and d["ranges"] == [], d
'
check "... a catch-up ran between its start and its end" /usr/bin/python3 -c '
import re, sys
log = open(sys.argv[1]).read()
start = [m.end() for m in re.finditer(r"verify pass [0-9]+: comparing 536870912 bytes", log)][-1]
end = log.index("done: 131072 blocks", start)
assert "catching-up" in log[start:end], log[start:end][:2000]
' "$T/lb.log"
check "the image equals the partition" wait_lb_converged "$IMG" 60
check "... byte for byte" same "$T/disk" "$IMG"

# --- a verify whose session ends: exit 2, and why -------------------------
kill -STOP "$(lbd_pid lbd)"
verify_start
check "another pass runs (lbd stopped: it cannot end)" wait_for 30 verifying
kill -9 "$(lbd_pid lbd)"
verify_end
check "lbd killed during the verify: exit 2" test "$RC" = 2
check "... JSON: failed, because the session ended" json_ok '
assert d["state"] == "failed" and "the session with lbd ended" in d["why"], d
'
check "... and a message on standard error" \
    grep -q "^lb: --verify: unit 1: pass [0-9]* did not finish" "$T/cut.err"
start_lbd lbd "$T/srv/lbd.conf"
check "lbd back: the image converges" wait_lb_converged "$IMG" 60
check "... byte for byte" same "$T/disk" "$IMG"

done_testing
