#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Several clients on one lbd listen address, told apart by name: four
# TLS clients with concurrent writes each converge to their own image;
# a plain-mode client on the same address converges too.  Refused, with
# the image untouched: a wrong key, the wrong mode (both ways), an
# unknown name.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires fio

# fingerprint IMAGE: the image's and its state file's checksums.
fingerprint () { md5sum <"$1"; md5sum <"$1.state"; }
# scribble URI: change the disk through nbdkit (the capture sees it).
scribble () {
    nbdsh -u "$1" -c '
import os
for i in range(16): h.pwrite(os.urandom(65536), i * 3 * 1048576 + 4096)
h.flush()
'
}

port=$(free_port)
SRV=$T/srv
conf=$SRV/lbd.conf
make_clients 64M 4 c1 c2 c3 c4 c5
cat >"$conf" <<CONF
# five clients on one address: four TLS, one plain
client name=c1 file=c1/disk.img key=c1/key listen=127.0.0.1/$port
client name=c2 file=c2/disk.img key=c2/key listen=127.0.0.1/$port
client name=c3 file=c3/disk.img key=c3/key listen=127.0.0.1/$port
client name=c4 file=c4/disk.img key=c4/key listen=127.0.0.1/$port
client name=c5 file=c5/disk.img key=c5/key listen=127.0.0.1/$port encrypt=no
CONF
out=$("$LBD" -n "$conf" 2>&1)
check "lbd -n accepts five clients on one address" test "$out" = "configuration OK"

start_lbd lbd "$conf"
check "lbd listens once for five clients" \
    grep -q "listening on 127.0.0.1/$port for 5 clients" "$T/lbd.log"
for c in c1 c2 c3 c4 c5; do
    start_unit "nbd-$c" "$T/u-$c" "$T/$c.disk"
done
for c in c1 c2 c3 c4; do
    start_lb "lb-$c" "$T/u-$c" "$T/$c.disk" "$port" "$T/$c.key" --name="$c"
done
start_lb lb-c5 "$T/u-c5" "$T/c5.disk" "$port" "$T/c5.key" --name=c5 --no-encrypt

for c in c1 c2 c3 c4 c5; do
    check "$c: first contact converges" wait_converged_in "$T/u-$c" "$SRV/$c/disk.img" 60
    check "$c: image equals its disk" same "$T/$c.disk" "$SRV/$c/disk.img"
done
tls_all () { local c; for c in c1 c2 c3 c4; do grep -q "client $c (.*): authenticated (TLS)" "$T/lbd.log" || return 1; done; }
check "c1..c4 authenticated with TLS" tls_all
check "c5 authenticated in plain mode" grep -q "client c5 .*authenticated (plain)" "$T/lbd.log"
check "lb-c5 says plain" grep -q "connected to 127.0.0.1/$port (plain)" "$T/lb-c5.log"

# Concurrent writes on all five.
pids=()
for c in c1 c2 c3 c4; do
    fio --name="$c" --ioengine=nbd --uri="$(uri "nbd-$c")" --rw=randwrite \
        --bsrange=4k-256k --size=64M --io_size=24M --iodepth=8 --fsync=16 \
        --randseed=$RANDOM --output="$T/fio-$c.log" >/dev/null 2>&1 &
    pids+=($!)
done
nbdsh -u "$(uri nbd-c5)" -c '
import os, random
for i in range(300):
    off = random.randrange(0, 64 * 1048576 - 262144, 512)
    n = random.randrange(512, 262144, 512)
    k = random.randrange(10)
    if k == 0: h.zero(n, off)
    elif k == 1: h.trim(n, off)
    elif k == 2: h.flush()
    else: h.pwrite(os.urandom(n), off)
h.flush()
' &
pids+=($!)
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
check "concurrent writers all succeeded" test "$fails" = 0
for c in c1 c2 c3 c4 c5; do
    check "$c: converges after concurrent writes" wait_converged_in "$T/u-$c" "$SRV/$c/disk.img" 60
    check "$c: image equals its disk after concurrent writes" same "$T/$c.disk" "$SRV/$c/disk.img"
done
js=$("$LBD" --status --json --control="$T/lbd.ctl" "$conf")
check "lbd --status: five connected, live and consistent" /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
cs = {c["name"]: c for c in d["clients"]}
assert sorted(cs) == ["c1", "c2", "c3", "c4", "c5"], cs.keys()
for c in cs.values():
    assert c["connected"] and c["phase"] == "live" and c["consistent"], c
' "$js"

# refused LBNAME UNIT DISK KEY LBD_TEXT LB_TEXT [lb options]: with the
# unit's own lb stopped and its disk changed, another lb is refused:
# both logs say why (fixed strings), and the image is not touched.
refused () {
    local name=$1 c=$2 key=$3 lbd_text=$4 lb_text=$5; shift 5
    local img=$SRV/$c/disk.img before after
    stop_lb "lb-$c"
    before=$(fingerprint "$img")
    scribble "$(uri "nbd-$c")"
    start_lb "$name" "$T/u-$c" "$T/$c.disk" "$port" "$key" "$@"
    check "$name: lbd logs the refusal" logged 20 "$T/lbd.log" "$lbd_text"
    check "$name: lb logs why" logged 20 "$T/$name.log" "$lb_text"
    sleep 2                     # lb retries every second: refused again
    stop_lb "$name"
    after=$(fingerprint "$img")
    check "$name: $c's image and state untouched" test "$before" = "$after"
    check "$name: lb never got a welcome" not grep -q "connected to" "$T/$name.log"
    # The real client comes back and catches up without a scan.
    start_lb "lb-$c" "$T/u-$c" "$T/$c.disk" "$port" "$T/$c.key" --name="$c" \
        $([ "$c" = c5 ] && echo --no-encrypt)
    check "$name: the real $c then converges" wait_converged_in "$T/u-$c" "$img" 60
    check "$name: $c's image equals its disk" same "$T/$c.disk" "$img"
}
not () { ! "$@"; }

make_key "$T/wrong.key"
refused lb-wrongkey c1 "$T/wrong.key" \
    "handshake failed (identity 'c1')" "(wrong key?)" --name=c1
grep -F "handshake failed (identity 'c1')" "$T/lbd.log" | tail -1 | sed 's/^/# lbd: /'
grep -F "(wrong key?)" "$T/lb-wrongkey.log" | tail -1 | sed 's/^/# lb: /'

refused lb-plain-on-tls c2 "$T/c2.key" \
    "client 'c2': mode mismatch: it connected in plain mode but its line requires TLS" \
    "server refused: mode mismatch: this client must use TLS" --name=c2 --no-encrypt

refused lb-tls-on-plain c5 "$T/c5.key" \
    "client 'c5': mode mismatch: it connected with TLS but its line says encrypt=no" \
    "server refused: mode mismatch: the server expects plain mode for this client" --name=c5

# An unknown name fails exactly like a wrong key (the peer learns nothing
# about which names exist); only lbd's log says which it was.
refused lb-unknown c3 "$T/c3.key" \
    "handshake failed (identity 'nobody'): unknown client name" "(wrong key?)" --name=nobody

refused lb-noname c4 "$T/c4.key" \
    "handshake failed (identity '$(hostname -s)'): unknown client name" "(wrong key?)"

check "no full scan after first contact" test "$(cat "$T"/lb-c?.log | grep -c 'full scan')" = 5
check "lbd counted the refusals of known names" /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.argv[1])
cs = {c["name"]: c for c in d["clients"]}
for n in ("c1", "c2", "c5"):
    assert cs[n]["refused"] >= 1, (n, cs[n])
' "$("$LBD" --status --json --control="$T/lbd.ctl" "$conf")"

done_testing
