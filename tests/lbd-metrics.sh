#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lbd's metrics file (lbd.conf's metrics=PATH): valid Prometheus text
# (promtool check metrics where Debian's prometheus package is
# installed, and always tests/prom-check.py, a strict check of the
# format and of promtool's naming rules); bytes out of sync above 0
# while a scan runs and 0 once live, NaN while lb is away; counters
# that only grow; the file replaced whole, never seen half written by a
# reader; lbd_up 0 after a clean stop; and lbd --status's times in
# text and ISO 8601 in JSON.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"

one_client
echo "metrics=lbd.prom" >>"$T/srv/lbd.conf"
M=$T/srv/lbd.prom
truncate -s 512M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=96 seek=4 conv=notrunc status=none
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
check "lbd wrote the metrics file at start" wait_for 10 test -s "$M"

# metric NAME [PHASE]: client1's value of NAME (of the series for PHASE).
metric () {
    sed -n "s/^livebackup_$1{client=\"client1\/disk.img\",image=\"[^\"]*\"${2:+,phase=\"$2\"}} //p" "$M"
}
# valid FILE: the format holds (promtool too, if installed).
PROMTOOL=$(command -v promtool || echo "${PROMTOOL:-}")
valid () {
    "$top_srcdir/tests/prom-check.py" "$1" || return 1
    [ -z "$PROMTOOL" ] || "$PROMTOOL" check metrics <"$1"
}
[ -n "$PROMTOOL" ] && diag "checking with $PROMTOOL too" ||
    diag "promtool not installed: tests/prom-check.py only"
check "before any client: valid" valid "$M"
check "... lbd up, its start time, one client, disconnected, NaN out of sync" \
    test "$(sed -n 's/^livebackup_lbd_up //p' "$M")" = 1 \
    -a "$(sed -n 's/^livebackup_lbd_clients //p' "$M")" = 1 \
    -a "$(metric client_phase disconnected)" = 1 \
    -a "$(metric client_out_of_sync_bytes)" = NaN
check "... never consistent: +Inf seconds" test "$(metric client_inconsistent_seconds)" = +Inf

# A reader that reads the file over and over while it is replaced: each
# copy whole (lbd_up first, the last family's sample last), and the
# file replaced (a new inode), never rewritten in place.
/usr/bin/python3 - "$M" "$T/reader.out" <<'PY' &
import os, sys, time
path, out = sys.argv[1], sys.argv[2]
reads, inodes, bad = 0, set(), []
end = time.time() + 25
while time.time() < end:
    try:
        with open(path, "rb") as f:
            inodes.add(os.fstat(f.fileno()).st_ino)
            data = f.read()
    except FileNotFoundError:
        bad.append("missing"); continue
    reads += 1
    lines = data.decode().split("\n")
    if not (data.startswith(b"# HELP livebackup_lbd_up ") and lines[-1] == ""
            and lines[-2].startswith("livebackup_client_export_connections{")):
        bad.append(repr(data[-200:]))
    time.sleep(0.001)
open(out, "w").write("%d %d %d %s\n" % (reads, len(inodes), len(bad), bad[:2]))
PY
READER=$!
cleanup "kill $READER"

# lb sends through a relay limited to 8 MB/s, so that the scan (96 MiB
# to send into an empty image) lasts about 12 s on any machine, however
# fast: long enough to be seen in the file and in lbd --status.
start_relay relay "$port" --rate=8000000
start_lb lb "$T" "$T/disk" "$rport" "$T/key"
# Once lb said how it starts (its first SYNC), the backlog is known.
scanning () { [ "$(metric client_phase scanning)" = 1 ] && [ "$(metric client_out_of_sync_bytes)" != NaN ]; }
check "the scan shows in the file at once (a state change)" wait_for 10 scanning
cp "$M" "$T/scanning.prom"
check "... valid" valid "$T/scanning.prom"
M=$T/scanning.prom
check "... connected, inconsistent, out of sync > 0 ($(metric client_out_of_sync_bytes))" \
    test "$(metric client_connected)" = 1 -a "$(metric client_consistent)" = 0 \
    -a "$(metric client_out_of_sync_bytes)" -gt 0
M=$T/srv/lbd.prom
# lbd_scan: lbd --status, in JSON then in text, both during the scan.
lbd_scan () {
    "$LBD" --status --json --control="$T/lbd.ctl" "$T/srv/lbd.conf" >"$T/lbd.json" &&
    "$LBD" --status --control="$T/lbd.ctl" "$T/srv/lbd.conf" >"$T/lbd.txt" &&
    /usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["clients"][0]; assert c["phase"] == "scanning" and "scan_percent" in c' "$T/lbd.json" &&
    grep -q "^  scan: " "$T/lbd.txt"
}
if wait_for 20 lbd_scan; then
    check "lbd --status --json during the scan: out of sync, to compare, ISO times" /usr/bin/python3 -c '
import json, re, sys
c = json.load(open(sys.argv[1]))["clients"][0]
iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
assert c["out_of_sync_known"] and c["out_of_sync_bytes"] >= c["to_compare_bytes"] >= 0, c
assert 0 <= c["scan_percent"] <= 100 and c["image_size"] == 512 << 20, c
assert re.fullmatch(iso, c["since_iso"]) and re.fullmatch(iso, c["phase_since_iso"]), c
assert c["last_consistent_iso"] is None and isinstance(c["rate"], int), c
' "$T/lbd.json"
    check "lbd --status text during the scan: times for people, out of sync" \
        grep -Eq "^  phase scanning since [0-9-]+ [0-9:]+ \([0-9]+ s ago\), epoch [0-9a-f]{16} seq [0-9]+; [0-9.]+ ([KMG]iB|bytes) out of sync$" "$T/lbd.txt"
    check "... and the scan's progress" \
        grep -Eqx "  scan: [0-9]+\.[0-9]% compared, [0-9.]+ ([KMG]iB|bytes) still to compare" "$T/lbd.txt"
    grep "^  \(phase\|scan\)" "$T/lbd.txt" | sed 's/^/#/'
else
    not_ok "lbd --status shows the scan"
fi

check "the scan converges" wait_lb_converged "$IMG" 60
live () { [ "$(metric client_phase live)" = 1 ] && [ "$(metric client_out_of_sync_bytes)" = 0 ]; }
check "once live: phase live, 0 bytes out of sync" wait_for 10 live
check "... consistent, 0 seconds inconsistent, last consistent a time" \
    test "$(metric client_consistent)" = 1 -a "$(metric client_inconsistent_seconds)" = 0 \
    -a "$(metric client_last_consistent_timestamp_seconds)" -gt 1000000000
check "... valid" valid "$M"
st=$("$LBD" --status --control="$T/lbd.ctl" "$T/srv/lbd.conf")
check "lbd --status text once live: connected since, 0 bytes out of sync" \
    grep -Eq "^client client1/disk.img: connected from 127.0.0.1:[0-9]+ since [0-9-]+ [0-9:]+ \([0-9]+ (s|min) ago\)$" <<<"$st"
check "... last consistent, how long ago" \
    grep -Eq "^  image $IMG \(512 MiB\): consistent, last consistent [0-9-]+ [0-9:]+ \([0-9]+ s ago\)$" <<<"$st"
check "... the rate with its unit" grep -Eq "^  received [0-9]+ bytes, [0-9.]+ ([KMG]iB|bytes)/s; 1 connections, 0 replaced, 0 refused$" <<<"$st"

# Counters only grow, across a reconnect and more writes; gauges move.
rx0=$(metric client_received_bytes_total); cx0=$(metric client_connections_total)
kill "$(lb_pid lb)"; wait "$(lb_pid lb)" 2>/dev/null
away () { [ "$(metric client_connected)" = 0 ] && [ "$(metric client_out_of_sync_bytes)" = NaN ]; }
check "lb gone: disconnected, out of sync not known (NaN)" wait_for 10 away
check "... its image still consistent" test "$(metric client_consistent)" = 1
nbdsh -u "$(uri nbd)" -c '
import os
for i in range(8): h.pwrite(os.urandom(1 << 20), i * 32 << 20)
h.flush()
'
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "lb back: live again" wait_lb_converged "$IMG" 60
check "... and in the file" wait_for 10 live
rx1=$(metric client_received_bytes_total); cx1=$(metric client_connections_total)
check "counters grew: received $rx0 -> $rx1, connections $cx0 -> $cx1" \
    test "$rx1" -gt "$rx0" -a "$cx1" = $((cx0 + 1))
# A refused handshake (wrong key) counts, and the file says so at once.
make_key "$T/wrong"
"$top_builddir/tests/lb-peer" badtype 127.0.0.1 "$port" "$T/wrong" client1 $((512 << 20)) >/dev/null 2>&1
refused () { [ "$(metric client_refused_total)" = 1 ]; }
check "a refused handshake (a wrong key) is counted" wait_for 10 refused

wait "$READER"
read -r reads inodes badn rest <"$T/reader.out"
diag "reader: $reads reads, $inodes files, $badn incomplete $rest"
check "a reader never saw the file incomplete ($reads reads)" test "$badn" = 0 -a "$reads" -gt 100
check "... the file was replaced, not rewritten ($inodes inodes)" test "$inodes" -gt 2
check "no temporary file left beside it" test ! -e "$M.tmp"

kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)" 2>/dev/null
check "after a clean stop: livebackup_lbd_up 0" \
    test "$(sed -n 's/^livebackup_lbd_up //p' "$M")" = 0
check "... still valid" valid "$M"

done_testing
