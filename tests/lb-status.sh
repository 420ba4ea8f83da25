#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What lb shows of itself: the progress line on a terminal (and none
# without one), lb --status during a scan (bytes still to compare,
# percent, rate, time left; times for people in text, epoch seconds and
# ISO 8601 in JSON) and its exit codes for Nagios-style checks: 0 live,
# 1 behind (scanning, lbd absent, waiting for the channel), 2 stopped
# (SIGSTOP: not responding) or dead (SIGKILL: not running).
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh

one_client
# Large enough that a scan lasts a few seconds.
truncate -s 512M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=96 seek=4 conv=notrunc status=none
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"

# st [OPTIONS]: lb --status for unit 1 in $T; output in $ST, exit in $RC.
st () { ST=$("$LB" --status --dir="$T" "$@" 1 2>"$T/st.err"); RC=$?; }
# json_ok PYTHON: the last JSON answer ($ST) makes PYTHON's asserts (on d) hold.
json_ok () { /usr/bin/python3 -c "import json,sys,re; d=json.loads(sys.argv[1]); $1" "$ST"; }
not () { ! "$@"; }
ISO='re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["since_iso"])'

# --- a scan on a terminal -------------------------------------------------
"$top_srcdir/tests/pty-run.py" "$T/tty.out" 100 \
    "$LB" --dir="$T" --retry=1 1 "$T/disk" 127.0.0.1 "$port" "$T/key" &
TTY=$!
cleanup "kill -9 $TTY"
# scanning: lb --status in JSON ($SJ) then in text ($STXT), both during
# the scan, both exiting 1.
scanning () {
    st --json; SJ=$ST; local rc=$RC
    st; STXT=$ST
    ST=$SJ
    [ "$rc" = 1 ] && [ "$RC" = 1 ] && grep -q "^  progress: " <<<"$STXT" &&
        json_ok 'assert d["phase"] == "scanning" and "percent" in d'
}
check "lb --status during the scan: exit 1 (behind)" wait_for 30 scanning
ST=$SJ
diag "$ST"
check "... JSON: to compare, percent, rate, out of sync, ISO times" json_ok "
assert d['state'] == 'behind' and d['lb_running'] and d['responding'], d
assert 0 < d['to_compare_bytes'] <= 512 << 20 or d['pass_done_bytes'] == 512 << 20, d
assert 0 <= d['percent'] <= 100 and isinstance(d['pass_rate'], int), d
assert d['out_of_sync_bytes'] >= d['to_compare_bytes'], d
assert d['pass_total_bytes'] == 512 << 20 and 'pass' not in d, d
assert d['why'].startswith('the image is from another capture epoch'), d
assert isinstance(d['since'], int) and $ISO, d
assert d['phase_since_iso'] and d['updated_iso'] and d['stale'] is False, d
assert d['last_consistent'] == 0 and d['last_consistent_iso'] is None, d
"
ST=$STXT
DATE='[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}'
check "... text: the progress line with percent and size" \
    grep -Eqx "  progress: [0-9]+\.[0-9]%, [0-9.]+ [KMG]iB of 512 MiB compared(, [0-9.]+ [KMG]iB/s, .* left)?" <<<"$ST"
check "... text: still to compare, in a size for people" \
    grep -Eqx "  to_compare_bytes: [0-9.]+ ([KMG]iB|bytes)" <<<"$ST"
check "... text: times in local time and how long ago" \
    grep -Eqx "  since: $DATE \([0-9]+ s ago\)" <<<"$ST"
check "... text: why the scan runs" \
    grep -qx "  why: the image is from another capture epoch (first contact, or nbdkit restarted)" <<<"$ST"
check "... text: the channel counts what is still to compare as out of sync" \
    grep -Eq "^unit 1: filter [a-z]+, queue [0-9]+/[0-9]+ bytes, [0-9]+ bytes out of sync," <<<"$ST"
check "the scan converges" wait_lb_converged "$IMG" 60
check "lb --status once live: exit 0" wait_for 10 sh -c "'$LB' --status --dir='$T' 1 >/dev/null"
st
check "... text: lb running, live, nothing to compare" \
    test "$(sed -n 2p <<<"$ST")" = "lb: running" -a "$RC" = 0
check "... no progress line once the pass is over" not grep -q "progress:" <<<"$ST"
st --json
check "... JSON: state live, the rate in bytes/s, last consistent in ISO" json_ok '
assert d["state"] == "live" and d["phase"] == "live" and d["out_of_sync_bytes"] == 0, d
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["last_consistent_iso"]), d
assert isinstance(d["rate"], int) and d["to_compare_bytes"] == 0, d
'
kill "$TTY"; wait "$TTY"
check "lb on a terminal stops cleanly on SIGTERM" test $? = 0
# What the terminal saw: the progress line, drawn over itself, with a
# rate and the time left; and every log line after an erased line.
check "the terminal showed the scan's progress, rate and time left" /usr/bin/python3 -c '
import re, sys
out = open(sys.argv[1], "rb").read().decode()
lines = re.findall(r"\rscanning: ([0-9]+\.[0-9])%, [0-9.]+ [KMG]?i?B(?:ytes)? of 512 MiB compared(, [0-9.]+ [KMG]iB/s, [0-9][^\r\n]* left)?", "\r" + out.replace("\r\x1b[K", "\r"))
assert lines, out[:2000]
assert any(rate for _, rate in lines), lines
pct = [float(p) for p, _ in lines]
assert pct == sorted(pct) and pct[-1] <= 100, pct
' "$T/tty.out"
check "... never in the middle of a log line" /usr/bin/python3 -c '
import re, sys
out = open(sys.argv[1], "rb").read().decode()
# Each log line starts at the start, after a newline, or after the
# progress line was erased ("\r" ESC "[K").
for m in re.finditer(r"[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} lb: ", out):
    before = out[max(0, m.start() - 4):m.start()]
    assert m.start() == 0 or before.endswith("\n") or before.endswith("\r\x1b[K"), repr(out[m.start() - 80:m.end()])
# and a progress line is erased before anything follows it
for m in re.finditer(r"scanning: [^\r\n]*", out):
    assert out[m.end():m.end() + 4] in ("\r\x1b[K", ""), repr(out[m.start():m.end() + 8])
assert "live (image consistent)" in out
' "$T/tty.out"

# --- without a terminal: the same scan, no progress line ----------------
# A restarted nbdkit is a new epoch: a full scan again.
stop_nbdkit nbd
start_nbdkit nbd "$T/disk"
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "a second scan, logged to a file, converges" wait_lb_converged "$IMG" 60
check "... and was a full scan" wait_for 10 grep -q "live (image consistent)" "$T/lb.log"
check "... with no progress line, carriage return or escape in the log" \
    /usr/bin/python3 -c '
import sys
log = open(sys.argv[1], "rb").read()
assert b"full scan" in log and b"\r" not in log and b"\x1b" not in log, log[-500:]
assert b"compared" not in log, log[-500:]
' "$T/lb.log"

# --- behind: lbd gone while writes happen --------------------------------
{ kill -9 "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"; } 2>/dev/null
nbdsh -u "$(uri nbd)" -c '
import os
for i in range(16): h.pwrite(os.urandom(65536), i * 4 << 20)
h.flush()
'
connecting () { st --json; [ "$RC" = 1 ] && json_ok 'assert d["phase"] == "connecting"'; }
check "lbd absent: lb --status exits 1, connecting" wait_for 20 connecting
check "... JSON: behind, not connected, the writes queued or marked" json_ok '
assert d["state"] == "behind" and d["connected"] is False, d
assert d["queue_used"] > 0 or d["out_of_sync_bytes"] > 0, d
'
start_lbd lbd "$T/srv/lbd.conf"
check "lbd back: lb catches up" wait_lb_converged "$IMG" 60
check "... and lb --status exits 0 again" wait_for 10 sh -c "'$LB' --status --dir='$T' 1 >/dev/null"

# --- stopped (SIGSTOP): not responding; dead (SIGKILL): not running -------
kill -STOP "$(lb_pid lb)"
st
check "a stopped lb: exit 2" test "$RC" = 2
check "... text: not responding, and why" \
    grep -Eqx "lb: not responding \(.*no answer within 5 s \(is it stopped\?\)\)" <<<"$ST"
st --json
check "... JSON: running but not responding" json_ok '
assert d["state"] == "not-responding" and d["lb_running"] is True, d
assert d["responding"] is False and "phase" not in d, d
'
kill -CONT "$(lb_pid lb)"
check "resumed (SIGCONT): exit 0 again" wait_for 15 sh -c "'$LB' --status --dir='$T' 1 >/dev/null"
{ kill -9 "$(lb_pid lb)"; wait "$(lb_pid lb)"; } 2>/dev/null
st
check "a killed lb: exit 2, not running" \
    test "$RC" = 2 -a "$(sed -n 2p <<<"$ST")" = "lb: not running"
st --json
check "... JSON: not running" json_ok '
assert d["state"] == "not-running" and d["lb_running"] is False, d
assert d["filter"] is True and "out_of_sync_bytes" in d, d
'

# --- waiting for the channel: a state, not "not running" ----------------
mkdir "$T/nochan"
start_lb lbwait "$T/nochan" "$T/disk" "$port" "$T/key"
# Exit 1 comes as soon as lb answers; the reason once its first attempt
# to attach has failed (until then it is only connecting).
waiting () {
    ST=$("$LB" --status --dir="$T/nochan" 1); RC=$?
    [ "$RC" = 1 ] && grep -q "waiting for the filter's channel" <<<"$ST"
}
check "an lb without its channel answers: exit 1" wait_for 10 waiting
check "... text: waiting for the filter's channel, and why" \
    grep -Eqx "lb: running, waiting for the filter's channel \(.*livewatch-1.*\)" <<<"$ST"
ST=$("$LB" --status --json --dir="$T/nochan" 1)
check "... JSON: waiting, with the reason" json_ok '
assert d["state"] == "waiting" and d["filter"] is False and d["waiting"], d
assert d["phase"] == "connecting" and d["connected"] is False, d
'
"$LB" --dir="$T/nochan" --retry=1 1 "$T/disk" 127.0.0.1 "$port" "$T/key" 2>"$T/second.err"
check "a second lb for the unit stops at once (exit $?), saying why" \
    grep -q "another lb answers there (does one follow unit 1 already?)" "$T/second.err"
check "... and the first one still answers" waiting
kill "$(lb_pid lbwait)"; wait "$(lb_pid lbwait)"
check "the waiting lb stops cleanly on SIGTERM ($?)" test ! -e "$T/nochan/livewatch-1.lb.ctl"

done_testing
