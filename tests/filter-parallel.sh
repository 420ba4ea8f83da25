#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Real parallel writers through the livewatch filter, with the test
# mirror attached from the start: nbdcopy over 4 connections; fio with 4
# jobs writing the same region at once (flat out, which degrades, then
# paced and on a 1 MiB hot spot, which stay in the ring); libnbd bursts
# of overlapping writes all in flight together; qemu-io (write, FUA,
# zero, unmap, fast zero, discard, overlapping aio).  After each, the
# mirror must converge to a byte-identical copy of the disk.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires nbdcopy; requires fio; requires qemu-io

# not_grep PATTERN FILE: PATTERN is not in FILE.
not_grep () { ! grep -q "$@"; }

truncate -s 128M "$T/disk"
start_nbdkit nbd "$T/disk"
start_mirror "$T/disk" "$T/img"
check "mirror converges after its first scan" wait_converged 60
check "mirror equals the (empty) disk" same "$T/disk" "$T/img"

# --- nbdcopy, 4 connections ------------------------------------------------
# 96 MiB of random data with two holes, so that nbdcopy sends zeroes too.
head -c 96M /dev/urandom >"$T/src"
fallocate -p -o $((20 << 20)) -l $((8 << 20)) "$T/src"
fallocate -p -o $((70 << 20)) -l $((3 << 20)) "$T/src"
r0=$(stat_of records); w0=$(stat_of writes)
check "nbdcopy --connections=4 onto the export succeeds" \
    nbdcopy --connections=4 --requests=16 "$T/src" "$(uri nbd)"
check "nbdcopy: the disk holds the source" \
    cmp -s -n $((96 << 20)) "$T/src" "$T/disk"
check "nbdcopy: the filter counted the writes" test "$(stat_of writes)" -gt "$w0"
check "nbdcopy: mirror converges" wait_converged 60
check "nbdcopy: mirror equals the disk" same "$T/disk" "$T/img"
diag "nbdcopy: $(( $(stat_of records) - r0 )) records, degrades=$(stat_of degrades)"
rm -f "$T/src"

# --- fio: 4 jobs overwriting the same 32 MiB at once ------------------------
cat >"$T/same.fio" <<EOF
[global]
ioengine=nbd
uri=$(uri nbd)
rw=randwrite
bsrange=4k-256k
iodepth=16
size=32M
offset=0
runtime=8
time_based=1
refill_buffers=1
randrepeat=0
[overlap]
numjobs=4
EOF
r0=$(stat_of records); w0=$(stat_of writes)
fio --output-format=terse "$T/same.fio" >"$T/fio.out" 2>"$T/fio.err"
check "fio: 4 overlapping random-write jobs succeed" test $? = 0
check "fio: 4 jobs reported" test "$(grep -c '^3;' "$T/fio.out")" = 4
w1=$(stat_of writes)
diag "fio: $((w1 - w0)) writes"
check "fio: the filter counted the writes (> 1000)" test $((w1 - w0)) -gt 1000
check "fio: mirror converges" wait_converged 60
check "fio: mirror equals the disk" same "$T/disk" "$T/img"
check "fio: records grew" test "$(stat_of records)" -gt "$r0"
check "fio: mode is normal at the end" test "$(stat_of mode)" = normal
diag "fio: $(( $(stat_of records) - r0 )) records, degrades=$(stat_of degrades) resumes=$(stat_of resumes)"

# The same, rate-limited so that the mirror keeps up: now the writes go
# through the ring, and their order there is what the mirror replays.
sed -e 's/^runtime=8/runtime=4/' -e 's/^\[overlap\]/rate=4m\n&/' \
    "$T/same.fio" >"$T/paced.fio"
r0=$(stat_of records); w0=$(stat_of writes); d0=$(stat_of degrades)
fio --output-format=terse "$T/paced.fio" >"$T/fio.out" 2>"$T/fio.err"
check "paced fio: 4 overlapping random-write jobs succeed" test $? = 0
r1=$(stat_of records); w1=$(stat_of writes)
diag "paced fio: $((w1 - w0)) writes, $((r1 - r0)) records, degrades $d0 -> $(stat_of degrades)"
check "paced fio: the filter counted the writes (> 200)" test $((w1 - w0)) -gt 200
check "paced fio: most writes were queued as records" test $((r1 - r0)) -ge $(( (w1 - w0) / 2 ))
check "paced fio: mirror converges" wait_converged 60
check "paced fio: mirror equals the disk" same "$T/disk" "$T/img"
check "paced fio: mode is normal at the end" test "$(stat_of mode)" = normal

# A hot spot: 4 jobs, 16 requests in flight each, on the same 1 MiB, so
# that writes to the same bytes are often in flight together.  Only the
# order of the records tells the mirror which of two overlapping writes
# the disk kept.  8 MiB a round fits in the 16M ring: no degrading.
cat >"$T/hot.fio" <<EOF
[global]
ioengine=nbd
uri=$(uri nbd)
rw=randwrite
bsrange=4k-64k
iodepth=16
size=1M
offset=0
io_size=2M
refill_buffers=1
randrepeat=0
[hot]
numjobs=4
EOF
for i in 1 2 3 4 5; do
    r0=$(stat_of records); w0=$(stat_of writes)
    fio --output-format=terse "$T/hot.fio" >"$T/fio.out" 2>"$T/fio.err"
    check "hot spot $i: 4 jobs on the same 1 MiB succeed" test $? = 0
    r1=$(stat_of records); w1=$(stat_of writes)
    check "hot spot $i: every write was queued ($((w1 - w0)) writes, $((r1 - r0)) records)" \
        test $((r1 - r0)) -ge $((w1 - w0)) -a $((w1 - w0)) -ge 200
    check "hot spot $i: mirror converges" wait_converged 60
    check "hot spot $i: mirror equals the disk" same "$T/disk" "$T/img"
done

# --- libnbd: bursts of overlapping writes, all in flight together -----------
# 4 connections, each sending 4 writes of mixed sizes (4K to 1M) into the
# same 1 MiB at the same instant, 30 times in a row.  Writes that overlap
# in time and space: the plugin must apply them and the filter record
# them in one and the same order, or the mirror ends up different.  (In
# degraded mode order does not matter: pauses keep the filter normal.)
r0=$(stat_of records); w0=$(stat_of writes); rc=0
for round in 1 2 3; do
python3 - "$(uri nbd)" "$round" <<'PY' || rc=1
import nbd, random, sys, time
uri, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
hs = []
for i in range(4):
    h = nbd.NBD()
    h.connect_uri(uri)
    hs.append(h)
for burst in range(30):
    base = rnd.randrange(0, 16) * 1048576
    for h in hs:
        for j in range(4):
            size = rnd.choice([4096, 65536, 262144, 1048576])
            off = base + rnd.randrange(0, (1048576 - size) // 4096 + 1) * 4096
            buf = nbd.Buffer.from_bytearray(bytearray([rnd.randrange(1, 256)]) * size)
            h.aio_pwrite(buf, off)
    for h in hs:
        while h.aio_in_flight() > 0:
            h.poll(-1)
    time.sleep(0.05)            # let the mirror keep up: stay normal
for h in hs:
    h.flush()
    h.shutdown()
PY
wait_converged 30 || rc=1
done
check "overlapping bursts: all writes succeed" test $rc = 0
r1=$(stat_of records); w1=$(stat_of writes)
diag "overlapping bursts: $((w1 - w0)) writes, $((r1 - r0)) records, degrades $(stat_of degrades)"
check "overlapping bursts: 1440 writes reached the filter" test $((w1 - w0)) = 1440
check "overlapping bursts: most writes were queued as records" test $((r1 - r0)) -ge $(( (w1 - w0) / 2 ))
check "overlapping bursts: mirror converges" wait_converged 60
check "overlapping bursts: mirror equals the disk" same "$T/disk" "$T/img"

# --- qemu-io: every kind of request, some in flight together --------------
# qemu accepts both spellings of the URI; use the other one for variety.
qemu_uri="nbd:unix:$T/nbd.sock"
r0=$(stat_of records); d0=$(stat_of degrades)
qemu-io -f raw "$qemu_uri" \
    -c "write -P 0x55 0 1M" \
    -c "write -f -P 0x66 1M 192k" \
    -c "write -z 512k 256k" \
    -c "write -z -u 2M 1M" \
    -c "write -P 0x77 3M 64k" \
    -c "discard 1M 512k" \
    -c "write -P 0x88 4M 2M" \
    -c "discard 5M 64k" \
    -c "write -f -z 6M 100k" \
    -c "aio_write -P 0x11 8M 1M" \
    -c "aio_write -P 0x22 8388608 4k" \
    -c "aio_write -P 0x33 8650752 512k" \
    -c "aio_write -f -P 0x44 9M 64k" \
    -c "aio_flush" \
    -c "flush" \
    -c "write -P 0x99 $(( (128 << 20) - 4096 )) 4k" \
    >"$T/qemu-io.out" 2>&1
rc=$?; sed "s/^/# qemu-io: /" "$T/qemu-io.out" | grep -iv "bytes at offset\|ops/sec"
check "qemu-io: every request succeeds" test $rc = 0
check "qemu-io: no request failed" not_grep -i "fail\|error" "$T/qemu-io.out"
check "qemu-io: the disk holds the last pattern at the very end" \
    cmp -s -i $(( (128 << 20) - 4096 )):0 -n 4096 "$T/disk" <(head -c 4096 /dev/zero | tr '\0' '\231')
check "qemu-io: mirror converges" wait_converged 30
check "qemu-io: mirror equals the disk" same "$T/disk" "$T/img"
r1=$(stat_of records)
diag "qemu-io: $((r1 - r0)) records"
# 1+2+1+1+1+1+1+1+2 + 4 aio (one FUA: +1) + aio_flush + flush + 1 = 20
check "qemu-io: each request was queued (>= 20 records, got $((r1 - r0)))" test $((r1 - r0)) -ge 20
check "qemu-io: a converged mirror keeps the filter normal (no degrade)" test "$(stat_of degrades)" = "$d0"
check "qemu-io: no plugin write failed" test "$(stat_of errors)" = 0

# A fast zero the file plugin cannot do fails with ENOTSUP and changes
# nothing: it must not count as a failed write nor degrade the filter.
qemu-io -f raw "$qemu_uri" -c "write -z -n 3M 128k" >"$T/qemu-io.out" 2>&1
sed "s/^/# qemu-io fast zero: /" "$T/qemu-io.out" | grep -v "ops/sec"
check "qemu-io fast zero: mirror converges" wait_converged 30
check "qemu-io fast zero: mirror equals the disk" same "$T/disk" "$T/img"
check "qemu-io fast zero: not counted as a failed write" test "$(stat_of errors)" = 0
check "qemu-io fast zero: the filter did not degrade" test "$(stat_of degrades)" = "$d0"

done_testing
