#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb and lbd under faults, each in the middle of writes from several
# connections (fio with 4 jobs, plus an nbdsh writer of unaligned writes,
# zeroes, trims and flushes): lb killed (-9) and restarted, lbd killed (-9)
# and restarted, the connection cut (a TCP relay between them killed and
# restarted; lb reconnects by itself), nbdkit restarted (lb reattaches).
# The relay also limits lb's sending to 20 MB/s, and ends a connection as
# a dead peer's kernel would, with a reset (see relay.py).  Three passes over the
# four faults:
#  - heavy: in the middle of heavy writes (the ring overflows, lb is
#    catching up while the writes go on);
#  - after: just after heavy writes, while lb still copies dirty blocks
#    (the fault waits until lb has taken blocks to copy since the writes
#    ended and lbd has not yet made them durable: nothing writes them
#    again, so only lb itself can see that they get copied);
#  - light: in the middle of light writes, about 8 MB/s (the filter stays
#    normal: the faults hit live streaming of records).
# After every round the image converges and equals the partition, and
# only the nbdkit restarts needed a full scan; when lbd or the link dies,
# lb notices within seconds (a dead peer answers with a reset), not
# after its 30 s TCP_USER_TIMEOUT.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires fio
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"
RELAY=$top_srcdir/tests/relay.py
RELAY_RATE=20000000

port=$(free_port)
rport=$(free_port)
while [ "$rport" = "$port" ]; do rport=$(free_port); done
one_client

# What runs now, killed at exit.  Only what runs: lb and lbd are started
# several times, and start_lb/start_lbd register "kill -9 PID" for every
# start, which at exit could hit an unrelated process that reused a dead
# one's pid (pid_max may be 32768); so lb_up below and functions.sh's
# lbd_up instead.
LB_PID= LBD_PID= RELAY_PID= NBDKIT_PID= WRITERS=
cleanup 'kill $NBDKIT_PID 2>/dev/null'
cleanup 'kill -9 $LB_PID $LBD_PID $RELAY_PID $WRITERS 2>/dev/null'

# lb_up: start_lb lb "$T" "$T/disk" "$rport" "$T/key", pid in $LB_PID.
# --defer=0: catch-up passes run while the writes go on (lb's default
# waits for the burst to end), so that the faults hit them there.
lb_up () {
    "$LB" --dir="$T" --retry=1 --defer=0 1 "$T/disk" 127.0.0.1 "$rport" "$T/key" \
        2>>"$T/lb.log" &
    LB_PID=$!
}

# start_relay: the relay on $rport, forwarding to lbd's $port; lb talks
# to it, so killing it cuts lb's connection.
start_relay () {
    rm -f "$T/relay.pid"
    /usr/bin/python3 "$RELAY" --rate=$RELAY_RATE "$rport" 127.0.0.1 "$port" \
        "$T/relay.pid" 2>>"$T/relay.log" &
    RELAY_PID=$!
    wait_for 10 test -s "$T/relay.pid" || { cat "$T/relay.log"; bail "relay did not start"; }
}
# serve NAME DISK: start_nbdkit, and remember its pid (the helper's own
# cleanup needs the pid file, which must then still exist).
serve () {
    start_nbdkit "$@"
    NBDKIT_PID=$(cat "$T/$1.pid")
}
# kill9 PID: SIGKILL and reap (our own child, so no "Killed" noise).
kill9 () { { kill -9 "$1"; wait "$1"; } 2>/dev/null; }

# start_writers SECONDS [light]: several connections writing for SECONDS,
# in the background (bounded by timeout); their pids in $WRITERS.  Heavy
# by default (as fast as nbdkit goes); "light": about 8 MB/s in all.
start_writers () {
    local secs=$1 rate= pause=0
    [ "${2:-}" = light ] && rate=--rate=1500k pause=0.02
    timeout 60 fio --name=w --ioengine=nbd --uri="$(uri nbd)" \
        --rw=randwrite --bsrange=4k-128k --size=32M --numjobs=4 \
        --iodepth=8 --fsync=64 --time_based --runtime="$secs" $rate \
        --output="$T/fio.log" >/dev/null 2>>"$T/writers.log" &
    WRITERS="$!"
    # Unaligned writes, zeroes, trims and flushes above fio's 32 MiB.
    timeout 60 nbdsh -u "$(uri nbd)" -c "
import os, random, time
end = time.time() + $secs
r = random.Random()
while time.time() < end:
    off = r.randrange(32 << 20, (64 << 20) - 300000)
    n = r.randrange(1, 262144)
    k = r.randrange(20)
    if k < 12: h.pwrite(os.urandom(n), off)
    elif k < 16: h.zero(n, off)
    elif k < 19: h.trim(n, off)
    else: h.flush()
    time.sleep($pause)
" 2>>"$T/writers.log" &
    WRITERS="$WRITERS $!"
}
wait_writers () { local p; for p in $WRITERS; do wait "$p" 2>/dev/null; done; WRITERS=; }

# mid_pass: lb holds copied blocks lbd has not yet made durable (pending),
# with more still to copy (dirty): it is in the middle of a catch-up.
mid_pass () { [ "$(stat_of pending)" -gt 0 ] && [ "$(stat_of dirty)" -gt 0 ]; } 2>/dev/null
# took_since D0: the same, and lb took blocks since dirty was D0 (once the
# writes are over, only lb taking blocks makes dirty shrink).
took_since () { [ "$(stat_of dirty)" -lt "$1" ] && mid_pass; } 2>/dev/null
nscans () { grep -c "full scan:" "$T/lb.log"; }
nended () { grep -c "lb: connection to .* ended:" "$T/lb.log"; }
# noticed_after N T0: seconds from T0 (HH:MM:SS.mmm) to lb's next
# "connection ... ended" after the first N, or "never".
noticed_after () {
    local line
    line=$(grep "lb: connection to .* ended:" "$T/lb.log" | sed -n "$(( $1 + 1 ))p")
    [ -n "$line" ] || { echo never; return; }
    awk -v a="${line%% *}" -v b="$2" 'BEGIN { split(a, x, ":"); split(b, y, ":")
        d = x[1] * 3600 + x[2] * 60 + x[3] - (y[1] * 3600 + y[2] * 60 + y[3])
        if (d < -43200) d += 86400
        printf "%.1f\n", d }'
}
within () { [ "$1" != never ] && awk -v d="$1" -v l="$2" 'BEGIN { exit !(d <= l) }'; }
ncontinue () { grep -c "continuing from seq" "$T/lb.log"; }
# same_image: image equals the partition; on a mismatch say where.
same_image () {
    same "$T/disk" "$IMG" && return 0
    diag "image differs from the partition:"
    cmp -l "$T/disk" "$IMG" 2>&1 | awk '{ b = int(($1 - 1) / 65536); if (!(b in s)) { s[b]; n++; if (n <= 8) printf "#   first bytes differ in 64K block %d (offset %d)\n", b, $1 - 1 } } END { printf "#   %d blocks of 64K differ\n", n }'
    return 1
}
show_logs () {
    diag "lb.log (tail):"; tail -15 "$T/lb.log" | sed 's/^/#   /'
    diag "lbd.log (tail):"; tail -8 "$T/lbd.log" | sed 's/^/#   /'
    diag "relay.log (tail):"; tail -4 "$T/relay.log" 2>/dev/null | sed 's/^/#   /'
    # A stalled connection shows here: states, queues, timers.
    diag "sockets:"; ss -tno state all "( sport = :$rport or dport = :$rport or sport = :$port or dport = :$port )" 2>&1 | sed 's/^/#   /'
}

# The partition: some data before anyone watches.
truncate -s 64M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=8 seek=4 conv=notrunc status=none
serve nbd "$T/disk"
lbd_up
start_relay
lb_up

check "first contact converges (full scan)" wait_lb_converged "$IMG" 60
check "image equals the partition" same_image

nbdkit_restarts=0
round=0
for load in heavy after light; do
    for kind in lb lbd link nbdkit; do
        round=$((round+1))
        case $kind in
            lb) what="lb killed with SIGKILL and restarted" ;;
            lbd) what="lbd killed with SIGKILL and restarted" ;;
            link) what="connection cut (relay killed) and restored" ;;
            nbdkit) what="nbdkit restarted" ;;
        esac
        case $load in
            heavy) what="during heavy writes, $what" ;;
            after) what="after heavy writes, $what" ;;
            light) what="during light writes, $what" ;;
        esac
        scans0=$(nscans); cont0=$(ncontinue); ended0=$(nended); lbpid0=$LB_PID
        if [ $load = after ]; then
            start_writers 2; wait_writers
            wait_for 10 took_since "$(stat_of dirty)"
        else
            start_writers 4 $load
            sleep 1.5
            [ $load = heavy ] && wait_for 3 mid_pass
        fi
        t0=$(date +%T.%3N)
        diag "round $round: $t0 the fault hits with lb $("$LB" --status --dir="$T" 1 | sed -n 's/^  phase: //p'), filter $(stat_of mode), blocks $(stat_of dirty) dirty, $(stat_of pending) pending"
        case $kind in
            lb)
                kill9 "$LB_PID"
                sleep 1
                lb_up ;;
            lbd)
                kill9 "$LBD_PID"
                sleep 1
                lbd_up ;;
            link)
                kill9 "$RELAY_PID"
                sleep 1
                start_relay ;;
            nbdkit)
                stop_nbdkit nbd || bail "nbdkit did not stop"
                wait_writers            # they lost their server
                serve nbd "$T/disk"
                nbdkit_restarts=$((nbdkit_restarts+1))
                [ $load = after ] || start_writers 2 $load ;;  # during the rescan
        esac
        wait_writers
        if wait_lb_converged "$IMG" 30; then
            ok "round $round ($what): converges"
        else
            not_ok "round $round ($what): converges"; show_logs
        fi
        check "round $round ($what): image equals the partition" same_image
        scans=$(( $(nscans) - scans0 )); cont=$(( $(ncontinue) - cont0 ))
        if [ $kind = nbdkit ]; then
            check "round $round ($what): exactly one full scan (new epoch)" \
                test "$scans" = 1
        else
            check "round $round ($what): no full scan (continued $cont times)" \
                test "$scans" = 0 -a "$cont" -ge 1
        fi
        if [ $kind != lb ]; then
            check "round $round ($what): the same lb carried on" \
                test "$LB_PID" = "$lbpid0" -a -d "/proc/$lbpid0"
        fi
        if [ $kind = lbd ] || [ $kind = link ]; then
            # At once, give or take a loaded machine: well below lb's
            # TCP_USER_TIMEOUT (30 s), which is for a silent peer.
            late=$(noticed_after "$ended0" "$t0")
            check "round $round ($what): lb noticed the lost connection within 10 s (after $late s)" \
                within "$late" 10
        fi
    done
done

diag "full scans: $(nscans), nbdkit restarts: $nbdkit_restarts"
check "full scans = 1 (first contact) + $nbdkit_restarts (nbdkit restarts)" \
    test "$(nscans)" = $((1 + nbdkit_restarts))
check "image state: consistent" test "$(state_of "$IMG" consistent)" = 1
check "lb never quit by itself" sh -c "! grep -q 'lb: exiting' '$T/lb.log'"

done_testing
