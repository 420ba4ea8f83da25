# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the tests of livewatch-state= (tests/state-*.sh), on top of
# tests/functions.sh.  Source after it.  One unit (1), one partition
# ($T/disk), its state file ($T/state), one lbd ($T/srv) and one lb.

STATE=$T/state
NBDKIT_PID= LB_PID= LBD_PID= WRITERS=
cleanup 'kill -9 $NBDKIT_PID 2>/dev/null'
cleanup 'kill -9 $LB_PID $LBD_PID $WRITERS 2>/dev/null'

# serve [NBDKIT ARGS...]: nbdkit on $T/disk with the state file; its
# errors (what it found wrong in the file) in $T/nbd.log too.
serve () {
    start_nbdkit nbd "$T/disk" livewatch-state="$STATE" --log=stderr "$@"
    NBDKIT_PID=$(cat "$T/nbd.pid")
}
# kill9 PID: SIGKILL and reap (our own child: no "Killed" noise).
# nbdkit is not our child (it detaches), so wait until it is gone or a
# zombie too, with no thread left (a zombie leader's other threads may
# still be exiting, holding its files): only then has the kernel closed
# its files and dropped its lock on the state file, which the next
# nbdkit takes.
kill9 () {
    { kill -9 "$1"; wait "$1"; } 2>/dev/null
    wait_for 20 dead "$1" || bail "pid $1 did not die on SIGKILL"
}
dead () {
    [ ! -e "/proc/$1" ] && return 0
    [ "$(sed 's/.*) //; s/ .*//' "/proc/$1/stat" 2>/dev/null)" = Z ] &&
        [ "$(ls "/proc/$1/task" 2>/dev/null | wc -l)" -le 1 ]
}
kill9_nbdkit () { kill9 "$NBDKIT_PID"; rm -f "$T/nbd.pid"; NBDKIT_PID=; }
stop_nbdkit_clean () { stop_nbdkit nbd || bail "nbdkit did not stop"; NBDKIT_PID=; }

# lb_up [LB OPTIONS]: lb for unit 1 in the background, pid in LB_PID.
lb_up () {
    "$LB" --dir="$T" --retry=1 --defer=0 "$@" 1 "$T/disk" 127.0.0.1 \
        "$port" "$T/key" 2>>"$T/lb.log" &
    LB_PID=$!
}

nscans () { grep -c "full scan:" "$T/lb.log"; }
ncontinue () { grep -c "continuing from seq" "$T/lb.log"; }
# lb's own count of bytes read from DEVICE, as it last logged it.
lb_device_bytes () {
    sed -n 's/.* \([0-9]*\) bytes read from the device.*/\1/p' "$T/lb.log" | tail -1
}
# rchar of lb: every byte it read(2), the page cache included.
lb_rchar () { sed -n 's/^rchar: //p' "/proc/$LB_PID/io"; }
# lb has noticed that the channel went away N times (or more).
lb_noticed () { [ "$(grep -c 'went away' "$T/lb.log")" -ge "$1" ]; }
# lb has logged a catch-up pass since line N of its log.
pass_since () { tail -n +"$(( $1 + 1 ))" "$T/lb.log" | grep -q "pass done\|sweep done"; }
lines () { wc -l <"$T/lb.log"; }

# same_image: the image equals the partition; else say how far not.
same_image () {
    same "$T/disk" "$IMG" && return 0
    diag "image differs from the partition in $(cmp -l "$T/disk" "$IMG" 2>/dev/null | wc -l) bytes; $(cmp "$T/disk" "$IMG" 2>&1)"
    return 1
}
show_logs () {
    diag "lb.log:"; tail -12 "$T/lb.log" | sed 's/^/#   /'
    diag "nbd.log (livewatch):"; grep -i "livewatch: [a-z]" "$T/nbd.log" | grep -v "debug: livewatch: \(open\|close\|pwrite\|zero\|trim\|flush\|prepare\|finalize\|get_size\|can_\|default_export\|preconnect\|cleanup\|after_fork\|get_ready\|config\|load\|unload\|thread_model\|block_size\|init_\)" | tail -6 | sed 's/^/#   /'
}

# writers SECONDS [BYTES]: fio with 4 jobs (4 connections) writing at
# random in the first BYTES (default 32M) of the partition, in the
# background, bounded by timeout; pids in $WRITERS.
writers () {
    timeout 30 fio --name=w --ioengine=nbd --uri="$(uri nbd)" \
        --rw=randwrite --bsrange=4k-128k --size="${2:-32M}" --numjobs=4 \
        --iodepth=8 --time_based --runtime="$1" --randrepeat=0 \
        --output="$T/fio.log" >/dev/null 2>>"$T/writers.log" &
    WRITERS=$!
}
# kill_writers: after nbdkit died under them (fio 3.33's nbd engine can
# spin for ever when its server dies: do not wait for it).
kill_writers () {
    local p
    for p in $WRITERS; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    WRITERS=
}
# some_writes SEED N: N writes of 4K..64K at random places, then a flush.
some_writes () {
    nbdsh -u "$(uri nbd)" -c "
import random
r = random.Random($1)
size = h.get_size()
for i in range($2):
    n = r.randrange(1, 17) * 4096
    off = r.randrange(0, (size - n) // 4096) * 4096
    h.pwrite(r.randbytes(n), off)
h.flush()
"
}

# The usual start: a partition of SIZE with some data, nbdkit with a new
# state file, lbd, lb, the first full scan.
state_setup () {
    one_client
    truncate -s "$1" "$T/disk"
    dd if=/dev/urandom of="$T/disk" bs=1M count=8 seek=4 conv=notrunc status=none
    serve
    lbd_up
    lb_up
    wait_lb_converged "$IMG" 60 || bail "first contact did not converge"
}
