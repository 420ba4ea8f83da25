#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb --compress=auto, the default (issue 11, "compression that adapts"):
# over a link that is the bottleneck (a relay at 8 MB/s) text travels
# compressed, random data raw (the probe skips it); --compress=off sends
# text as it is; every image converges identical.  Wire bytes are
# counted by the relay, outside lb and lbd.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"
[ -d /usr/include ] || skip "no /usr/include for text"

one_client

# Text: headers from /usr/include, 16 MiB of them, in a fixed order.
/usr/bin/python3 - "$T/text" <<'PY'
import os, sys
out, want = open(sys.argv[1], "wb"), 16 << 20
for root, dirs, files in sorted(os.walk("/usr/include")):
    dirs.sort()
    for f in sorted(files):
        if want <= 0:
            break
        try:
            b = open(os.path.join(root, f), "rb").read(want)
        except OSError:
            continue
        out.write(b); want -= len(b)
PY
TEXT=$(stat -c %s "$T/text")
check "16 MiB of text to write" test "$TEXT" = $((16 << 20))

truncate -s 128M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
# An 8 MB/s link that holds little (lb's send queue shows it is behind).
start_relay wire "$port" --rate=8000000 --rcvbuf=131072
start_lb lb1 "$T" "$T/disk" "$rport" "$T/key" -v
check "first contact converges" wait_lb_converged "$IMG" 60

# write_file FILE OFFSET: FILE's bytes onto the partition at OFFSET, in
# 256 KiB writes, then a flush.
write_file () {
    nbdsh -u "$(uri nbd)" -c "
f = open('$1', 'rb'); off = $2
while True:
    b = f.read(256 << 10)
    if not b: break
    h.pwrite(b, off); off += len(b)
h.flush()
"
}
w0=$(wire_up_now wire)
write_file "$T/text" 0
check "text converges" wait_lb_converged "$IMG" 60
check "image equals the partition (text, auto)" same "$T/disk" "$IMG"
w1=$(wire_up_now wire)
diag "text: $TEXT bytes written, $((w1 - w0)) on the wire ($(( (w1 - w0) * 100 / TEXT ))%)"
check "auto over a slow link: text costs <= 0.6 x its bytes on the wire" \
    test $((w1 - w0)) -le $((TEXT * 6 / 10))
check "lb logged the level it chose for the link" \
    grep -q "compression: link about .*: level" "$T/lb1.log"

head -c $((8 << 20)) /dev/urandom >"$T/random"
write_file "$T/random" $((32 << 20))
check "random data converges" wait_lb_converged "$IMG" 60
check "image equals the partition (random, auto)" same "$T/disk" "$IMG"
w2=$(wire_up_now wire)
diag "random: $((8 << 20)) bytes written, $((w2 - w1)) on the wire"
check "random data goes raw: within 2 % of its bytes" \
    test $((w2 - w1)) -ge $((8 << 20)) -a $((w2 - w1)) -le $(( (8 << 20) * 102 / 100 ))

# The same text again, elsewhere, with compression off.
stop_lb lb1
start_lb lb2 "$T" "$T/disk" "$rport" "$T/key" --compress=off
check "lb with --compress=off converges" wait_lb_converged "$IMG" 60
w2=$(wire_up_now wire)
write_file "$T/text" $((64 << 20))
check "text converges (off)" wait_lb_converged "$IMG" 60
check "image equals the partition (text, off)" same "$T/disk" "$IMG"
w3=$(wire_up_now wire)
diag "text, --compress=off: $((w3 - w2)) bytes on the wire"
check "--compress=off: text costs its bytes" test $((w3 - w2)) -ge "$TEXT"

done_testing
