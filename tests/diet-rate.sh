#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Rate limits (issue 11): lb --max-rate and lbd.conf's max-rate= keep
# the bytes a second under the limit (16 MiB through 2 MiB/s take at
# least 6 s: a lower bound, which a slow machine cannot break), the
# writer is never held back (the filter degrades instead), and the image
# converges identical.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"

one_client
conf=$(cat "$T/srv/lbd.conf")

out=$(echo "$conf max-rate=fast" >"$T/srv/bad.conf"; "$LBD" -n "$T/srv/bad.conf" 2>&1)
check "lbd.conf: a bad max-rate is refused, naming the key" \
    grep -q "max-rate=fast: expected bytes a second" <<<"$out"
out=$("$LB" --max-rate=2X 1 "$T/disk" 127.0.0.1 "$port" "$T/key" 2>&1)
check "lb: a bad --max-rate is refused" grep -q -- "--max-rate=2X: bytes a second" <<<"$out"

truncate -s 64M "$T/disk"
start_nbdkit nbd "$T/disk" livewatch-queue=1M
start_lbd lbd "$T/srv/lbd.conf"
start_relay wire "$port"
degrades () { "$MIRROR" --stat --dir="$T" 1 | sed -n 's/^degrades=//p'; }

# burst OFFSET: 16 MiB of random data in 1 MiB writes, then a flush.
burst () {
    nbdsh -u "$(uri nbd)" -c "
import os
for i in range(16):
    h.pwrite(os.urandom(1 << 20), $1 + (i << 20))
h.flush()
"
}

# --- lb --max-rate=2M ------------------------------------------------------
start_lb lb1 "$T" "$T/disk" "$rport" "$T/key" --max-rate=2M
check "first contact converges" wait_lb_converged "$IMG" 60
d0=$(degrades) w0=$(wire_up_now wire) t0=$(date +%s.%N)
burst 0
check "lb --max-rate: the burst converges" wait_lb_converged "$IMG" 120
t1=$(date +%s.%N) w1=$(wire_up_now wire)
took=$(echo "$t1 - $t0" | bc)
diag "lb --max-rate=2M: $((w1 - w0)) bytes in $took s"
check "lb --max-rate: 16 MiB went over the wire" test $((w1 - w0)) -ge $((16 << 20))
check "lb --max-rate=2M: 16 MiB took at least 6 s ($took s)" \
    test "$(echo "$took >= 6" | bc)" = 1
check "the writer was not held back: the filter degraded instead" \
    test "$(degrades)" -gt "$d0"
check "image equals the partition (lb's limit)" same "$T/disk" "$IMG"
stop_lb lb1

# --- lbd.conf max-rate=2M ----------------------------------------------------
echo "$conf max-rate=2M" >"$T/srv/lbd.conf"
kill -HUP "$(lbd_pid lbd)"
check "lbd reloads with max-rate" logged 10 "$T/lbd.log" "reloaded"
start_lb lb2 "$T" "$T/disk" "$rport" "$T/key"
check "lb without a limit converges" wait_lb_converged "$IMG" 60
d0=$(degrades) w0=$(wire_up_now wire) t0=$(date +%s.%N)
burst $((32 << 20))
check "lbd max-rate: the burst converges" wait_lb_converged "$IMG" 120
t1=$(date +%s.%N) w1=$(wire_up_now wire)
took=$(echo "$t1 - $t0" | bc)
diag "lbd max-rate=2M: $((w1 - w0)) bytes in $took s"
check "lbd max-rate=2M: 16 MiB took at least 6 s ($took s)" \
    test "$(echo "$took >= 6" | bc)" = 1
check "the writer was not held back: the filter degraded instead" \
    test "$(degrades)" -gt "$d0"
check "image equals the partition (lbd's limit)" same "$T/disk" "$IMG"

done_testing
