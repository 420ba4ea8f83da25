#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb and lbd end to end on loopback, TLS: first contact (full scan),
# live replication of every kind of write, status from both programs,
# and lb restarted and lbd restarted continuing without a rescan.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh

port=$(free_port)
mkdir -p "$T/srv/client1"
make_key "$T/key"
cp "$T/key" "$T/srv/client1/key"; chmod 600 "$T/srv/client1/key"
cat >"$T/srv/lbd.conf" <<CONF
# one client, TLS (the default)
client file=client1/disk.img key=client1/key \\
       listen=127.0.0.1/$port type=simple
CONF
IMG=$T/srv/client1/disk.img

out=$("$LBD" -n "$T/srv/lbd.conf" 2>&1)
check "lbd -n accepts the config" test "$out" = "configuration OK"

# The partition: some data before anyone watches.
truncate -s 64M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=8 seek=4 conv=notrunc status=none
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key"

check "first contact converges (full scan)" wait_lb_converged "$IMG" 60
check "image equals the partition" same "$T/disk" "$IMG"
check "lb logged why it scanned" grep -q "full scan: the image is from another capture epoch" "$T/lb.log"
check "the session is TLS" grep -q "authenticated (TLS)" "$T/lbd.log"
check "image state: consistent" test "$(state_of "$IMG" consistent)" = 1

nbdsh -u "$(uri nbd)" -c '
import os
h.pwrite(os.urandom(1048576), 1048576)
h.pwrite(os.urandom(8192), 5000, nbd.CMD_FLAG_FUA)
h.zero(65536 * 3, 3 * 1048576 + 4096)
h.trim(131072, 20 * 1048576)
h.pwrite(b"\x00" * 65536, 30 * 1048576)
h.flush()
h.pwrite(b"C" * 512, 64 * 1048576 - 512)
'
check "live writes converge" wait_lb_converged "$IMG" 30
check "image equals the partition after live writes" same "$T/disk" "$IMG"

# lb answers for its state on its control socket, beside the channel.
lb_says_live () { "$LB" --status --dir="$T" 1 | grep -q "phase: live"; }
check "lb --status shows the live phase" wait_for 5 lb_says_live
st=$("$LB" --status --dir="$T" 1)
check "lb --status: filter normal, lb running" \
    grep -q "filter normal" <<<"$st"
check "lb --status: lb running" grep -qx "lb: running" <<<"$st"
check "lb --status writes times in local time, and how long ago" \
    grep -Eqx "  since: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} \([0-9]+ (s|min( [0-9]+ s)?) ago\)" <<<"$st"
check "lb's control socket is its owner's only" \
    test "$(stat -c %a "$T/livewatch-1.lb.ctl")" = 600
js=$("$LB" --status --json --dir="$T" 1)
check "lb --status --json parses" /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["mode"]=="normal" and d["phase"]=="live" and d["out_of_sync_bytes"]==0' "$js"
check "lb --status --json: typed fields" /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["lb_running"] is True and d["connected"] is True, d
assert d["deferring"] is False and isinstance(d["since"], int) and d["since"] > 0, d
assert isinstance(d["server"], str) and isinstance(d["bytes_sent"], int), d
' "$js"
ls=$("$LBD" --status --control="$T/lbd.ctl" "$T/srv/lbd.conf")
check "lbd --status: client connected and consistent" \
    grep -q "connected from 127.0.0.1" <<<"$ls"
jl=$("$LBD" --status --json --control="$T/lbd.ctl" "$T/srv/lbd.conf")
check "lbd --status --json parses" /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); c=d["clients"][0]; assert c["connected"] and c["phase"]=="live" and c["consistent"]' "$jl"

# lb restarted (SIGTERM): continues from lbd's durable seq, no scan.
kill "$(lb_pid lb)"; wait "$(lb_pid lb)" 2>/dev/null
check "lb removed its control socket on exit" test ! -e "$T/livewatch-1.lb.ctl"
st=$("$LB" --status --dir="$T" 1)
check "lb --status without lb: the channel's line" \
    grep -Eq "^unit 1: filter [a-z]+, queue [0-9]+/[0-9]+ bytes, [0-9]+ bytes out of sync, seq [0-9]+ \(released [0-9]+\)$" <<<"$st"
check "lb --status without lb: not running, no lb fields; how the capture began" \
    test "$(sed 1d <<<"$st")" = "lb: not running
  capture: new at nbdkit's start (no livewatch-state= file)"
js=$("$LB" --status --json --dir="$T" 1)
check "lb --status --json without lb: channel fields only" /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["filter"] is True and d["lb_running"] is False, d
assert isinstance(d["out_of_sync_bytes"], int) and "mode" in d, d
assert "phase" not in d and "connected" not in d, d
' "$js"
nbdsh -u "$(uri nbd)" -c '
import os
for i in range(20): h.pwrite(os.urandom(4096), i * 1048576 + 77)
'
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "restarted lb converges" wait_lb_converged "$IMG" 30
check "image equals the partition after lb restart" same "$T/disk" "$IMG"
check "restarted lb continued without a scan" grep -q "continuing from seq" "$T/lb.log"

# lbd restarted (SIGKILL): lb reconnects and continues, no scan.
{ kill -9 "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"; } 2>/dev/null
nbdsh -u "$(uri nbd)" -c '
import os
for i in range(20): h.pwrite(os.urandom(4096), i * 1048576 + 99)
h.flush()
'
start_lbd lbd "$T/srv/lbd.conf"
check "lb reconnects to a restarted lbd and converges" wait_lb_converged "$IMG" 30
check "image equals the partition after lbd restart" same "$T/disk" "$IMG"
check "exactly one full scan in the whole run" test "$(grep -c 'full scan' "$T/lb.log")" = 1

done_testing
