#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A scan cut in the middle (lb killed with SIGKILL) goes on where it got
# to, not from the start: each sync of a scan records how far its sweep
# went (the state file's swept=), and the next lb resumes there, then
# copies what was written meanwhile, in swept and unswept parts alike.
# Then the same with lbd killed in the middle of a scan whose first
# regions are the same on both sides and whose last ones differ (both
# levels of the compare, lb/sink.h, in flight when it is cut).
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"
RELAY=$top_srcdir/tests/relay.py

one_client
rport=$(free_port)
while [ "$rport" = "$port" ]; do rport=$(free_port); done

# 768 MiB: 512 MiB of zeroes (the new, sparse image has them too: the
# sweep goes through them quickly and records its progress at 256 and
# 512 MiB), then 256 MiB of random data, sent through a 20 MB/s relay.
truncate -s 768M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=256 seek=512 conv=notrunc status=none
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
/usr/bin/python3 "$RELAY" --rate=20000000 "$rport" 127.0.0.1 "$port" "$T/relay.pid" \
    2>>"$T/relay.log" &
cleanup "kill \$(cat $T/relay.pid 2>/dev/null) 2>/dev/null"
wait_for 10 test -s "$T/relay.pid" || bail "relay did not start"

start_lb lb1 "$T" "$T/disk" "$rport" "$T/key" -v
swept () { state_of "$IMG" swept; }
half_swept () {
    [ "$(state_of "$IMG" phase)" = scanning ] && [ "$(swept)" -ge 536870912 ]
}
check "the first scan records its progress (512 MiB swept)" \
    wait_for 60 half_swept
kill -9 "$(lb_pid lb1)"; wait "$(lb_pid lb1)" 2>/dev/null
check "lb was killed in the middle of the scan" \
    sh -c "! grep -q 'live (image consistent)' '$T/lb1.log'"
at=$(swept)
diag "killed with $at bytes swept"

# Written while no lb runs: in the swept part and in the rest.
nbdsh -u "$(uri nbd)" -c '
import os
for off in (4096, 300 << 20, 600 << 20, (768 << 20) - 65536):
    h.pwrite(os.urandom(65536), off)
h.flush()
'
start_lb lb2 "$T" "$T/disk" "$port" "$T/key" -v
check "the next lb converges" wait_lb_converged "$IMG" 120
check "it resumed the scan where it was cut" \
    grep -q "resuming the cut scan at byte $at of 805306368" "$T/lb2.log"
check "and did not start a full scan" sh -c "! grep -q 'full scan' '$T/lb2.log'"
check "image equals the partition" same "$T/disk" "$IMG"
check "lbd calls the image consistent" test "$(state_of "$IMG" consistent)" = 1

# A scan cut before it recorded any progress starts over (with reason).
kill "$(lb_pid lb2)"; wait "$(lb_pid lb2)" 2>/dev/null
sed -i -e 's/^phase=.*/phase=scanning/' -e 's/^swept=.*/swept=0/' \
    -e 's/^consistent=.*/consistent=0/' "$IMG.state"
{ kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"; } 2>/dev/null
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb3 "$T" "$T/disk" "$port" "$T/key"
check "a scan with no progress recorded converges" wait_lb_converged "$IMG" 120
check "it was scanned again, saying why" \
    grep -q "full scan: a scan of the image was cut before it recorded any progress" "$T/lb3.log"
check "image equals the partition" same "$T/disk" "$IMG"

# lbd killed mid-scan.  The image's random part is zeroed but for its
# first 8 MiB and one 4 KiB block every 16 MiB (the image file has
# those, the partition has data there), and its state made to match no
# capture: a full scan, through the 20 MB/s relay, sweeps the 512 MiB
# that both hold as zeroes at once and copies the rest slowly.
stop_lb lb3
{ kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"; } 2>/dev/null
truncate -s $((520 << 20)) "$IMG"; truncate -s $((768 << 20)) "$IMG"
for mb in $(seq 528 16 752); do
    dd if="$T/disk" of="$IMG" bs=4096 count=1 skip=$((mb * 256)) \
        seek=$((mb * 256)) conv=notrunc status=none
done
sed -i 's/^epoch=.*/epoch=0000000000000001/' "$IMG.state"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb4 "$T" "$T/disk" "$rport" "$T/key" -v
check "the scan records its progress past the same regions (512 MiB)" \
    wait_for 60 half_swept
kill -9 "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)" 2>/dev/null
check "lbd was killed in the middle of the scan" \
    test "$(state_of "$IMG" phase)" = scanning
at=$(swept)
diag "lbd killed with $at bytes swept"
start_lbd lbd "$T/srv/lbd.conf"
check "lb reconnects and converges" wait_lb_converged "$IMG" 120
check "it resumed the cut scan" \
    grep -q "resuming the cut scan at byte $at of 805306368" "$T/lb4.log"
check "image equals the partition" same "$T/disk" "$IMG"
check "lbd calls the image consistent" test "$(state_of "$IMG" consistent)" = 1

done_testing
