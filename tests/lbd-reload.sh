#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# SIGHUP reloads lbd.conf while clients replicate and a restore reads:
#  - added: a new client line (on a new listen address) starts, its lb,
#    refused until then, syncs;
#  - removed: its session is told and ends, its export connection ends,
#    its lb is refused afterwards, its image no longer changes;
#  - changed key (the key file rotated in place): its session restarts,
#    the old key is refused, lb's SIGHUP takes the new key, which works;
#  - file moved: the old image stays as it was, the new one syncs;
#  - broken (a bad line, a missing key file, an address in use): the
#    whole file is refused with FILE:LINE, as lbd -n says, and all runs
#    on; the good file again changes nothing;
#  - untouched: the client's lb never reconnects (one session from start
#    to end, in lb's log, lbd's log and lbd's connection count), and a
#    restore of its export, open across every reload, completes with the
#    bytes of the moment it opened;
#  - a listen address no client uses any more is closed.
# Then SIGTERM: lbd exits 0.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh

A=$(free_port); B=$(free_port); C=$(free_port); X=$(free_port)
SRV=$T/srv
conf=$SRV/lbd.conf
make_clients 16M 2 c1 c2 c3 c4 c5
line_c1="client name=c1 file=c1/disk.img key=c1/key listen=127.0.0.1/$A"
line_c2="client name=c2 file=c2/disk.img key=c2/key listen=127.0.0.1/$A"
line_c3="client name=c3 file=c3/disk.img key=c3/key listen=127.0.0.1/$A"
line_c4="client name=c4 file=c4/disk.img key=c4/key listen=127.0.0.1/$B"
line_c4m="client name=c4 file=c4/moved.img key=c4/key listen=127.0.0.1/$B"
line_c5="client name=c5 file=c5/disk.img key=c5/key listen=127.0.0.1/$C"
line_x="export listen=127.0.0.1/$X"
printf '%s\n' "# v1" "$line_c1" "$line_c2" "$line_c3" "$line_c4" "$line_x" >"$conf"
good=$'# v2\n'"$line_c1"$'\n'"$line_c3"$'\n'"$line_c4m"$'\n'"$line_c5"$'\n'"$line_x"

# write_to UNIT: some writes through nbdkit, flushed.
write_to () {
    nbdsh -u "$(uri "$1")" -c '
import os
for i in range(4): h.pwrite(os.urandom(65536), (int.from_bytes(os.urandom(2), "little") % 200) * 65536)
h.flush()
'
}
# lines FILE: how many lines FILE has now (a mark for after).
lines () { wc -l <"$1"; }
# after MARK FILE PATTERN: a line after MARK matches PATTERN (fixed).
after () { tail -n +"$(( $1 + 1 ))" "$2" | grep -qF -- "$3"; }
# hup_lbd: SIGHUP, and wait until lbd says it is done with it.
hup_lbd () {
    local m; m=$(lines "$T/lbd.log")
    kill -HUP "$(lbd_pid lbd)"
    wait_for 30 sh -c "tail -n +$((m + 1)) '$T/lbd.log' | grep -qE 'reloaded |not reloaded'"
}
# connects NAME: lbd's connection count for client NAME.
connects () {
    "$LBD" --status --json --control="$T/lbd.ctl" "$conf" | /usr/bin/python3 -c '
import json, sys
for c in json.load(sys.stdin)["clients"]:
    if c["name"] == sys.argv[1]: print(c["connects"])' "$1"
}

for c in c1 c2 c3 c4 c5; do start_unit "$c" "$T/u-$c" "$T/$c.disk"; done
start_lbd lbd "$conf"
for c in c1 c2 c3 c4; do
    port=$A; [ $c = c4 ] && port=$B
    start_lb "$c" "$T/u-$c" "$T/$c.disk" "$port" "$T/$c.key" --name=$c
done
for c in c1 c2 c3 c4; do
    check "$c converges" wait_converged_in "$T/u-$c" "$SRV/$c/disk.img"
done
# c5's lb, before its line exists: refused at the door (nothing listens).
start_lb c5 "$T/u-c5" "$T/c5.disk" "$C" "$T/c5.key" --name=c5
check "c5's lb is refused before its line exists" \
    logged 10 "$T/c5.log" "cannot connect to 127.0.0.1 port $C"

# Restores of c1 (untouched) and c2 (to be removed), each paused half way
# until GO exists: both stay open across the reloads below.
cp "$T/c1.disk" "$T/c1.expected"
cp "$T/c2.disk" "$T/c2.expected"
"$LBD" --psk-line "$conf" c1 >"$T/c1.psk"
"$LBD" --psk-line "$conf" c2 >"$T/c2.psk"
reader () {   # reader NAME: read NAME's export into $T/NAME.restored
    U="nbds://$1@127.0.0.1:$X/$1?tls-psk-file=$T/$1.psk" \
    OUT=$T/$1.restored HALF=$T/$1.half GO=$T/go nbdsh -c '
import os, time
h.set_uri_allow_local_file(True)
h.connect_uri(os.environ["U"])
size = h.get_size()
out = open(os.environ["OUT"], "wb")
off = 0
while off < size:
    n = min(1 << 18, size - off)
    out.write(h.pread(n, off))
    off += n
    if off == size // 2:
        open(os.environ["HALF"], "w").close()
        while not os.path.exists(os.environ["GO"]):
            h.pread(512, 0)     # the connection is still there
            time.sleep(0.2)
out.close()
' 2>>"$T/$1.reader.log"
}
reader c1 & R1=$!
reader c2 & R2=$!
cleanup "kill $R1 $R2"
check "both restores are half way" wait_for 30 test -e "$T/c1.half" -a -e "$T/c2.half"
# c1 goes on writing: its restore must still read the moment it opened.
write_to c1

# --- reload 1: c2 removed, c3's key rotated, c4's file moved, c5 added ---
md5_c2=$(md5sum <"$SRV/c2/disk.img")
md5_c4=$(md5sum <"$SRV/c4/disk.img")
make_key "$T/c3.newkey"
cp "$T/c3.newkey" "$SRV/c3/key"     # in place: same path, new bytes
printf '%s\n' "$good" >"$conf"
m=$(lines "$T/lbd.log"); m2=$(lines "$T/c2.log"); m3=$(lines "$T/c3.log")
hup_lbd
check "reload 1 is done" after "$m" "$T/lbd.log" \
    "reloaded $conf: 4 clients (2 added, 1 changed, 2 removed), 3 listen addresses, 1 export address"
check "lbd names what changed" sh -c "
    tail -n +$((m + 1)) '$T/lbd.log' | grep -qF 'client c3: changed (key); its connections restart' &&
    tail -n +$((m + 1)) '$T/lbd.log' | grep -qF 'client c5: added (image $SRV/c5/disk.img, listen 127.0.0.1/$C)' &&
    tail -n +$((m + 1)) '$T/lbd.log' | grep -qF 'client c2: removed; its connections end'"
check "the new address is bound" after "$m" "$T/lbd.log" "listening on 127.0.0.1/$C for 1 client"
check "c2's session says goodbye" after "$m" "$T/lbd.log" \
    "lbd's configuration of this client changed: said goodbye; image durable at seq"
check "c2's lb is told, not failed" logged 10 "$T/c2.log" \
    "connection to 127.0.0.1/$A ended by the server: server reloaded its configuration"
check "c2's export connection ends" wait_for 20 sh -c "! kill -0 $R2 2>/dev/null"
wait "$R2"; rc=$?
check "... and its reader fails (exit $rc)" test "$rc" != 0
check "c2's lb is refused afterwards" wait_for 20 after "$m" "$T/lbd.log" \
    "(identity 'c2'): unknown client name"
write_to c2
sleep 2
check "c2's image no longer changes" test "$(md5sum <"$SRV/c2/disk.img")" = "$md5_c2"
check "c3's lb, old key, is refused" wait_for 20 after "$m" "$T/lbd.log" \
    "handshake failed (identity 'c3')"
check "... after the server said goodbye" after "$m3" "$T/c3.log" \
    "ended by the server: server reloaded its configuration"
check "c4's moved image syncs" wait_converged_in "$T/u-c4" "$SRV/c4/moved.img"
check "... equal to its partition" same "$T/c4.disk" "$SRV/c4/moved.img"
check "c4's old image is left as it was" test "$(md5sum <"$SRV/c4/disk.img")" = "$md5_c4"
check "c5, added, syncs" wait_converged_in "$T/u-c5" "$SRV/c5/disk.img"
check "... equal to its partition" same "$T/c5.disk" "$SRV/c5/disk.img"

# c3's lb takes the new key on SIGHUP, and is let in.
cp "$T/c3.newkey" "$T/c3.key"
m3=$(lines "$T/c3.log")
write_to c3
kill -HUP "$(lb_pid c3)"
check "lb reads its key file again on SIGHUP" logged 10 "$T/c3.log" \
    "key file $T/c3.key read again: a new key, used from the next connection on"
check "c3 with the new key syncs" wait_converged_in "$T/u-c3" "$SRV/c3/disk.img"
check "... equal to its partition" same "$T/c3.disk" "$SRV/c3/disk.img"

# --- reload 2: broken files are refused whole; all runs on ---------------
broken () {   # broken DESC LINE FILE-CONTENT: SIGHUP refuses it as -n does
    local desc=$1 line=$2 msg out rc
    printf '%s\n' "$3" >"$conf"
    out=$("$LBD" -n "$conf" 2>&1); rc=$?
    msg=${out#lbd: }
    m=$(lines "$T/lbd.log")
    hup_lbd
    if [ "$rc" = 2 ] && [ "${msg#"$conf:$line: "}" != "$msg" ] &&
       after "$m" "$T/lbd.log" "$msg; not reloaded: the running configuration stays"; then
        ok "$desc: refused with $conf:$line, as lbd -n says"
    else
        not_ok "$desc: refused with $conf:$line, as lbd -n says"
        diag "lbd -n: exit $rc: $out"; tail -n +$((m + 1)) "$T/lbd.log" | sed 's/^/#   /'
    fi
}
broken "a bad port" 7 "$good"$'\n'"client name=c6 file=c6.img key=c1/key listen=127.0.0.1/99999"
broken "a missing key file" 3 "$line_c1"$'\n'"$line_c3"$'\n'"client name=c6 file=c6.img key=c6/nokey listen=127.0.0.1/$A"$'\n'"$line_c4m"$'\n'"$line_c5"$'\n'"$line_x"
# An address in use: lbd -n binds nothing and accepts it; the reload
# cannot bind it and refuses.
/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(1); print(s.getsockname()[1], flush=True); time.sleep(600)' >"$T/busy.port" &
BUSY=$!; cleanup "kill $BUSY"
wait_for 10 test -s "$T/busy.port"
busy=$(cat "$T/busy.port")
printf '%s\n' "$good" "client name=c6 file=c6.img key=c1/key listen=127.0.0.1/$busy" >"$conf"
m=$(lines "$T/lbd.log")
hup_lbd
check "an address in use: the reload is refused with FILE:LINE" after "$m" "$T/lbd.log" \
    "$conf:7: listen=127.0.0.1/$busy: Address already in use; not reloaded: the running configuration stays"
check "... and lbd -n, which binds nothing, accepts it" \
    test "$("$LBD" -n "$conf" 2>&1)" = "configuration OK"
kill "$BUSY"
# Everything runs on as before.
for c in c1 c3 c5; do write_to $c; done
for c in c1 c3 c5; do
    check "$c still replicates after the refused reloads" \
        wait_converged_in "$T/u-$c" "$SRV/$c/disk.img"
done
check "no image for the refused line" test ! -e "$SRV/c6.img"
# The good file again: nothing changes.
printf '%s\n' "$good" >"$conf"
m=$(lines "$T/lbd.log")
hup_lbd
check "the same file again changes nothing" after "$m" "$T/lbd.log" \
    "reloaded $conf: 4 clients (0 added, 0 changed, 0 removed)"

# --- the untouched client and its restore ---------------------------------
touch "$T/go"
wait "$R1"; rc=$?
check "c1's restore, open across every reload, completes (exit $rc)" test "$rc" = 0
check "... with the bytes of the moment it opened" same "$T/c1.expected" "$T/c1.restored"
check "c1's lb never reconnected" test "$(grep -c 'connected to 127.0.0.1' "$T/c1.log")" = 1
check "lbd started one session for c1" \
    test "$(grep -c 'client c1 (.*): session started' "$T/lbd.log")" = 1
check "lbd counts one connection for c1" test "$(connects c1)" = 1
check "c1's lb logged no failure" sh -c "! grep -E 'ended|retrying|cannot' '$T/c1.log'"
check "c1 still converges" wait_converged_in "$T/u-c1" "$SRV/c1/disk.img"
check "... equal to its partition" same "$T/c1.disk" "$SRV/c1/disk.img"

# --- reload 3: c5 removed, and with it its address ------------------------
printf '%s\n' "$line_c1" "$line_c3" "$line_c4m" "$line_x" >"$conf"
m=$(lines "$T/lbd.log"); m5=$(lines "$T/c5.log")
hup_lbd
check "an address no client uses is closed" after "$m" "$T/lbd.log" \
    "no longer listening on 127.0.0.1/$C"
check "c5's lb then finds nothing listening" wait_for 20 after "$m5" "$T/c5.log" \
    "cannot connect to 127.0.0.1 port $C: Connection refused"
check "lbd logged no protocol error" sh -c "! grep -q 'protocol error' '$T/lbd.log'"

kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"; rc=$?
check "lbd exits 0 on SIGTERM after the reloads (status $rc)" test "$rc" = 0
done_testing
