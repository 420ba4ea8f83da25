#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lbd against hostile peers: garbage, silence, a flood of 500
# connections, and an authenticated peer sending oversized, truncated,
# unknown, misdirected and out-of-range frames.  Each is refused and
# logged; lbd keeps serving a good client during and after; the attacked
# image never changes.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh
PEER=$top_builddir/tests/lb-peer

port=$(free_port)
mkdir -p "$T/srv"
make_key "$T/key1"; make_key "$T/key2"
cp "$T/key1" "$T/srv/key1"; cp "$T/key2" "$T/srv/key2"
cat >"$T/srv/lbd.conf" <<CONF
client file=good.img key=key1 listen=127.0.0.1/$port type=simple name=good
client file=victim.img key=key2 listen=127.0.0.1/$port type=simple name=victim
CONF
# The victim's image: 8 MiB of known data.
head -c 8M /dev/urandom >"$T/srv/victim.img"
before=$(md5sum <"$T/srv/victim.img")

truncate -s 32M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key1" --name=good
IMG=$T/srv/good.img
check "good client converges" wait_lb_converged "$IMG" 60

# A writer on the good client for the whole attack.
nbdsh -u "$(uri nbd)" -c '
import os, time
end = time.time() + 30
i = 0
while time.time() < end:
    h.pwrite(os.urandom(65536), (i * 65536) % (32 << 20))
    i += 1
    time.sleep(0.01)
' &
writer=$!
cleanup "kill $writer"

# The silent peer first, alone: its refusal ("timed out") must not fall
# in the same 10-s window of the refusal log's rate limit as the flood's
# (20 lines per window), or it would rightly not be logged.
check "silent peer is hung up on (handshake time limit)" \
    "$PEER" silent 127.0.0.1 "$port"
check "lbd logged the handshake time limit" grep -q "timed out" "$T/lbd.log"
check "garbage is refused" "$PEER" garbage 127.0.0.1 "$port"
check "500 connections at once" "$PEER" flood=500 127.0.0.1 "$port"
for mode in oversized badtype server-msg past-end; do
    check "authenticated peer: $mode is refused" \
        "$PEER" "$mode" 127.0.0.1 "$port" "$T/key2" victim 8388608
done
"$PEER" truncated 127.0.0.1 "$port" "$T/key2" victim 8388608 >/dev/null
check "lbd is still running" kill -0 "$(lbd_pid lbd)"
wait $writer 2>/dev/null

check "good client converges after the attacks" wait_lb_converged "$IMG" 60
check "good image equals its partition" same "$T/disk" "$IMG"
check "victim image unchanged" test "$(md5sum <"$T/srv/victim.img")" = "$before"
check "lbd logged the garbage" grep -q "neither TLS nor plain" "$T/lbd.log"
check "lbd logged the oversized frame" grep -q "victim.*protocol error: message length out of range" "$T/lbd.log"
check "lbd logged the write past the end" grep -q "victim.*protocol error: write outside the image" "$T/lbd.log"
n=$(grep -c "too many connections in handshake" "$T/lbd.log")
check "the flood was capped and logged at most a few times ($n)" test "$n" -ge 1 -a "$n" -le 3
n=$(grep -c "handshake failed" "$T/lbd.log")
check "refused connections are logged at most 20 per 10 s ($n lines)" test "$n" -le 45
check "lb never lost its session to the attacks" test "$(grep -c 'full scan' "$T/lb.log")" = 1

done_testing
