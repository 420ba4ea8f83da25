#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# nbdkit restarted under a running mirror: stopped cleanly while writes
# are in flight, then SIGKILLed while writes are in flight.  Each new
# nbdkit starts a new epoch on a new channel file (replacing the one left
# behind); the mirror notices the old one is gone, reattaches, rescans
# and converges again.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires fio

# channel_says TEXT: lw-mirror --stat's error names TEXT (it fails when
# the channel is not usable).
channel_says () { "$MIRROR" --stat --dir="$T" 1 2>&1 | grep -q "$1"; }
inode () { stat -c %i "$T/livewatch-1"; }
epoch () { stat_of epoch; }
# Every full scan: the first (no state yet), then one per new epoch.
full_scans () { grep -c 'full scan: ' "$T/mirror.log"; }
reattaches () { grep -c 'channel gone; reattaching' "$T/mirror.log"; }
reattached () { [ "$(reattaches)" -ge "$1" ]; }  # reattached N: N times or more
writes_above () { [ "$(stat_of writes)" -gt "$1" ]; }  # writes_above N
# An inode number can be reused once its file is gone: to tell that a
# new nbdkit replaced the channel file, keep the old one open meanwhile.
hold_channel () { exec {HELD_FD}<"$T/livewatch-1"; }
held_inode () { stat -L -c %i "/proc/$$/fd/$HELD_FD"; }
release_channel () { exec {HELD_FD}<&-; }

# writer NAME SECONDS: fio in the background (one process: thread=1),
# random writes of mixed sizes plus some trims, for SECONDS.
writer () {
    local name=$1 secs=$2 job
    : >"$T/$name.fio"
    for job in "$name rw=randwrite bsrange=4k-128k iodepth=8 refill_buffers=1" \
               "$name-trim rw=randtrim bs=64k iodepth=2 rate_iops=50"; do
        set -- $job
        echo "[$1]"; shift
        printf '%s\n' "$@" ioengine=nbd "uri=$(uri nbd)" size=64M \
            runtime=$secs time_based=1 randrepeat=0 thread=1
    done >"$T/$name.fio"
    fio --output-format=terse "$T/$name.fio" >"$T/$name.out" 2>"$T/$name.err" &
    WRITER_PID=$! WRITER_NAME=$name
    cleanup "kill -9 $WRITER_PID"
}
writer_gone () {
    local s; s=$(ps -o stat= -p "$WRITER_PID" 2>/dev/null)
    [ -z "$s" ] || [ "${s:0:1}" = Z ]
}
# stop_writer: nbdkit is gone; let fio notice, or kill it.  fio 3.33's
# nbd engine can spin for ever ("nbd_poll: nothing to poll for in state
# DEAD") when the server dies under it: a fio bug, not ours.
stop_writer () {
    if ! wait_for 5 writer_gone; then
        diag "fio still running 5 s after nbdkit went away (fio nbd engine bug); killing it"
        kill -9 "$WRITER_PID"
    fi
    wait "$WRITER_PID" 2>/dev/null
    diag "fio exit status $?: $(grep -m1 -v 'connected to NBD' "$T/$WRITER_NAME.err")"
}

some_writes () {  # some_writes SEED
    nbdsh -u "$(uri nbd)" -c '
import random
rnd = random.Random('"$1"')
size = h.get_size()
for n in range(200):
    off = rnd.randrange(0, size // 4096) * 4096
    length = min(rnd.choice([4096, 65536, 1048576]), size - off)
    h.pwrite(rnd.randbytes(length), off)
h.flush()
'
}

truncate -s 64M "$T/disk"
start_nbdkit nbd "$T/disk"
start_mirror "$T/disk" "$T/img"
check "mirror converges after its first scan" wait_converged 60
check "mirror equals the disk" same "$T/disk" "$T/img"
e1=$(epoch)
check "converged mirror follows some writes" some_writes 1
check "...and converges" wait_converged 30
check "...and equals the disk" same "$T/disk" "$T/img"

# --- clean stop while fio writes ----------------------------------------------
w0=$(stat_of writes)
writer w1 20
check "fio is writing (300 writes)" wait_for 20 writes_above $((w0 + 300))
pid=$(cat "$T/nbd.pid")
stop_nbdkit nbd
check "nbdkit stopped" wait_for 10 sh -c "! kill -0 $pid 2>/dev/null"
check "a clean stop marks the channel shut down" channel_says "the filter has shut down"
stop_writer
check "mirror notices the channel is gone" wait_for 10 reattached 1
sleep 0.3
check "mirror is still running, waiting for a new nbdkit" kill -0 $MIRROR_PID

hold_channel
start_nbdkit nbd "$T/disk"
e2=$(epoch)
check "restarted nbdkit: new epoch ($e1 -> $e2)" test "$e2" != "$e1"
check "restarted nbdkit: new channel file" test "$(inode)" != "$(held_inode)"
release_channel
check "restarted nbdkit: mirror converges" wait_converged 60
check "restarted nbdkit: mirror equals the disk" same "$T/disk" "$T/img"
check "restarted nbdkit: mirror said 'channel gone; reattaching'" reattached 1
check "restarted nbdkit: mirror did a full scan for the new epoch" test "$(full_scans)" = 2
check "restarted nbdkit: one consumer attach on the new channel" test "$(stat_of attach_count)" = 1
check "restarted nbdkit: writes are followed" some_writes 2
check "restarted nbdkit: mirror converges after them" wait_converged 30
check "restarted nbdkit: mirror equals the disk after them" same "$T/disk" "$T/img"

# --- SIGKILL while fio writes -------------------------------------------------
w0=$(stat_of writes)
writer w2 20
check "fio is writing (300 writes)" wait_for 20 writes_above $((w0 + 300))
pid=$(cat "$T/nbd.pid")
hold_channel
kill -9 "$pid"
check "nbdkit is dead" wait_for 10 sh -c "! kill -0 $pid 2>/dev/null"
stop_writer
check "the killed nbdkit left its channel file behind" test "$(inode)" = "$(held_inode)"
check "the channel left behind is seen as stale" channel_says "stale channel: its nbdkit is not running"
check "mirror notices the channel is gone" wait_for 10 reattached 2
sleep 0.3
check "mirror is still running, waiting for a new nbdkit" kill -0 $MIRROR_PID

start_nbdkit nbd "$T/disk"
e3=$(epoch)
check "after SIGKILL: the stale channel file was replaced" test "$(inode)" != "$(held_inode)"
release_channel
check "after SIGKILL: new epoch ($e2 -> $e3)" test "$e3" != "$e2"
check "after SIGKILL: mirror converges" wait_converged 60
check "after SIGKILL: mirror equals the disk" same "$T/disk" "$T/img"
check "after SIGKILL: mirror did a full scan for the new epoch" test "$(full_scans)" = 3
check "after SIGKILL: writes are followed" some_writes 3
check "after SIGKILL: mirror converges after them" wait_converged 30
check "after SIGKILL: mirror equals the disk after them" same "$T/disk" "$T/img"
check "after SIGKILL: mode is normal" test "$(stat_of mode)" = normal

# --- the mirror stops cleanly and reports what it did -------------------------
kill $MIRROR_PID; wait $MIRROR_PID
check "mirror exits 0 on SIGTERM" test $? = 0
check "mirror attached 3 times and did 3 full scans" grep -q "done: attaches=3 scans=3 " "$T/mirror.log"

done_testing
