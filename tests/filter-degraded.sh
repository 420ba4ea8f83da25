#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# A consumer too slow for the writes: with a 256K ring and a mirror that
# sleeps 2 ms per record, every burst of writes fills the ring, the
# filter falls back to the dirty bitmap, and the mirror catches up by
# copying blocks and asks to resume.  Several times over, then under one
# writer whose bursts make the filter switch back and forth.  The
# mirror must equal the disk each time, and the writer must never wait
# for the slow consumer.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires fio

# not_grep PATTERN FILE: PATTERN is not in FILE.
not_grep () { ! grep -q "$@"; }

# elapsed CMD...: run CMD; its duration in milliseconds in $ELAPSED_MS.
elapsed () {
    local t0 t1 rc
    t0=$(date +%s%N); "$@"; rc=$?; t1=$(date +%s%N)
    ELAPSED_MS=$(( (t1 - t0) / 1000000 ))
    return $rc
}

truncate -s 64M "$T/disk"
start_nbdkit nbd "$T/disk" livewatch-queue=256K
check "ring is 256K" test "$(stat_of ring)" = 262144

# One burst: 16 MiB of 4K random writes over the first 32 MiB, 16 in
# flight.  Small writes make many records: a writer that waited for the
# consumer (2 ms per record) would take over 8 s instead of well under 1.
burst () {  # burst NAME SEED
    cat >"$T/$1.fio" <<EOF
[burst]
ioengine=nbd
uri=$(uri nbd)
rw=randwrite
bs=4k
iodepth=16
size=32M
io_size=16M
randseed=$2
refill_buffers=1
EOF
    fio --output-format=terse "$T/$1.fio" >"$T/$1.out" 2>"$T/$1.err"
}

# --- the same burst with no consumer: the writer's own speed ---------------
w0=$(stat_of writes)
elapsed burst base 1
check "baseline burst (no consumer) succeeds" test $? = 0
check "baseline burst: 4096 writes reached the filter" test $(( $(stat_of writes) - w0 )) = 4096
base_ms=$ELAPSED_MS
diag "baseline burst: ${base_ms} ms"

start_mirror "$T/disk" "$T/img" --delay-us=2000
check "slow mirror converges after its first scan" wait_converged 60
check "slow mirror equals the disk" same "$T/disk" "$T/img"

# --- bursts, each one catching the mirror up afterwards -------------------
best_ms=
for i in 1 2 3; do
    d0=$(stat_of degrades); r0=$(stat_of resumes)
    elapsed burst burst$i $((i + 1))
    check "burst $i succeeds" test $? = 0
    diag "burst $i: ${ELAPSED_MS} ms (baseline ${base_ms} ms)"
    [ -z "$best_ms" ] || [ "$ELAPSED_MS" -lt "$best_ms" ] && best_ms=$ELAPSED_MS
    check "burst $i: the ring filled and the filter degraded" \
        test "$(stat_of degrades)" -gt "$d0"
    check "burst $i: mirror catches up" wait_converged 60
    check "burst $i: the filter resumed" test "$(stat_of resumes)" -gt "$r0"
    check "burst $i: mirror equals the disk" same "$T/disk" "$T/img"
done
# Loose, for noisy machines: the fastest of the three bursts against the
# baseline.  A writer held back by the mirror would need over 8 s each.
check "the writer was not held back by the slow mirror (best ${best_ms} ms, baseline ${base_ms} ms)" \
    test "$best_ms" -le $(( 3 * base_ms + 1500 ))

# --- zeroes, trims, flushes and big writes from nbdsh, in bursts -----------
for i in 1 2; do
    d0=$(stat_of degrades)
    nbdsh -u "$(uri nbd)" -c '
import os, random
rnd = random.Random('$i')
size = h.get_size()
for n in range(400):
    off = rnd.randrange(0, size // 512) * 512
    length = min(rnd.choice([512, 4096, 65536, 300000, 1048576]), size - off)
    op = rnd.random()
    if op < 0.6:
        h.pwrite(os.urandom(length), off, nbd.CMD_FLAG_FUA if n % 50 == 0 else 0)
    elif op < 0.8:
        h.zero(length, off)
    elif op < 0.95:
        h.trim(length, off)
    else:
        h.flush()
'
    check "nbdsh burst $i succeeds" test $? = 0
    check "nbdsh burst $i: the filter degraded" test "$(stat_of degrades)" -gt "$d0"
    check "nbdsh burst $i: mirror catches up" wait_converged 60
    check "nbdsh burst $i: mirror equals the disk" same "$T/disk" "$T/img"
done

# --- one writer, bursts of 128 writes every second: back and forth -------
# Each burst overruns the ring (about 60 records of 4K); each pause is
# long enough for the mirror to catch up and ask to resume.
d0=$(stat_of degrades); r0=$(stat_of resumes); w0=$(stat_of writes)
cat >"$T/bursty.fio" <<EOF
[bursty]
ioengine=nbd
uri=$(uri nbd)
rw=randwrite
bs=4k
iodepth=4
size=48M
offset=8M
thinktime=1000000
thinktime_blocks=128
runtime=8
time_based=1
refill_buffers=1
EOF
fio --output-format=terse "$T/bursty.fio" >"$T/bursty.out" 2>"$T/bursty.err"
check "bursty writer succeeds" test $? = 0
w1=$(stat_of writes)
diag "bursty writer: $((w1 - w0)) writes, degrades $d0 -> $(stat_of degrades), resumes $r0 -> $(stat_of resumes)"
check "bursty writer: wrote several bursts (>= 768 writes)" test $((w1 - w0)) -ge 768
check "bursty writer: mirror catches up" wait_converged 60
check "bursty writer: the filter went degraded and back at least 3 times" \
    test $(( $(stat_of resumes) - r0 )) -ge 3
check "bursty writer: mirror equals the disk" same "$T/disk" "$T/img"

# --- the totals ---------------------------------------------------------------
diag "totals: $("$MIRROR" --stat --dir="$T" 1 | grep -E '^(degrades|resumes|records|bits_set|writes)=' | tr '\n' ' ')"
check "degrades >= 3 in the whole run" test "$(stat_of degrades)" -ge 3
check "resumes >= 3 in the whole run" test "$(stat_of resumes)" -ge 3
check "mode is normal at the end" test "$(stat_of mode)" = normal
check "no plugin write failed" test "$(stat_of errors)" = 0
check "the mirror never lost its channel" not_grep "reattaching" "$T/mirror.log"
check "only the first scan was a full scan" test "$(grep -c 'full scan' "$T/mirror.log")" = 1

done_testing
