#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# livewatch-state=: lb and lbd killed (SIGKILL) together with nbdkit
# (killed or stopped), in the middle of live mode and in the middle of a
# catch-up, restarted in various orders: every round converges equal to
# the partition and not one full scan happens after the first contact.
. "${top_srcdir:-.}/tests/functions.sh"
. "$top_srcdir/tests/state-functions.sh"
requires nbdkit; requires nbdsh; requires fio

# mid_pass: lb holds copied blocks lbd has not made durable, with more to
# copy: in the middle of a catch-up.
mid_pass () { [ "$(stat_of pending)" -gt 0 ] && [ "$(stat_of dirty)" -gt 0 ]; } 2>/dev/null
live () { [ "$(state_of "$IMG" phase)" = live ] && [ "$(stat_of mode)" = normal ]; } 2>/dev/null
writes_above () { [ "$(stat_of writes)" -gt "$1" ]; }

state_setup 128M

# round WHEN WHAT...: WHEN is live (light writes, the filter normal) or
# catchup (heavy writes: degraded, lb copying); WHAT: the kills, then the
# starts, in order (kill:lb kill:lbd kill:nbdkit stop:nbdkit start:X).
round=0
round_ () {
    local when=$1 step scans0 what; shift
    round=$((round + 1))
    scans0=$(nscans)
    what="round $round ($when: $*)"
    if [ "$when" = live ]; then
        wait_for 20 live
        local w0; w0=$(stat_of writes)
        some_writes "$round" 300 2>/dev/null &
        WRITERS=$!
        wait_for 10 writes_above $((w0 + 50))
    else
        w0=$(stat_of writes)
        writers 4 64M
        wait_for 10 writes_above $((w0 + 200))
        wait_for 5 mid_pass
    fi
    diag "$what: lb $(state_of "$IMG" phase), filter $(stat_of mode), $(stat_of dirty) dirty, $(stat_of pending) pending"
    for step in "$@"; do
        case $step in
            kill:lb) kill9 "$LB_PID"; LB_PID= ;;
            kill:lbd) kill9 "$LBD_PID"; LBD_PID= ;;
            kill:nbdkit) kill9_nbdkit; kill_writers ;;
            stop:nbdkit) stop_nbdkit_clean; kill_writers ;;
            start:lb) lb_up ;;
            start:lbd) lbd_up ;;
            start:nbdkit) serve ;;
            sleep) sleep 1 ;;
        esac
    done
    kill_writers
    if wait_lb_converged "$IMG" 40; then ok "$what: converges"
    else not_ok "$what: converges"; show_logs; fi
    check "$what: image equals the partition" same_image
    check "$what: no full scan" test "$(nscans)" = "$scans0"
}

round_ live kill:lb kill:nbdkit start:nbdkit start:lb
round_ live kill:lbd kill:nbdkit start:lbd start:nbdkit
round_ live kill:nbdkit kill:lbd kill:lb start:lb start:lbd sleep start:nbdkit
round_ catchup kill:nbdkit kill:lb start:nbdkit start:lb
round_ catchup kill:lbd stop:nbdkit start:nbdkit start:lbd
round_ catchup kill:lb kill:lbd kill:nbdkit start:lbd start:nbdkit sleep start:lb
round_ catchup kill:lbd kill:nbdkit start:nbdkit sleep start:lbd

# nbdkit killed again in the catch-up of what it recovered.
scans0=$(nscans)
w0=$(stat_of writes)
writers 3 64M
wait_for 10 writes_above $((w0 + 200))
kill9_nbdkit; kill_writers
# A slow lb, so that the restart's catch-up lasts long enough to be cut
# (the faster compare made it too quick to catch otherwise).
kill9 "$LB_PID"
serve
lb_up --max-rate=1M
if wait_for 30 mid_pass; then
    kill9 "$LB_PID"; kill9_nbdkit
    serve; lb_up
    ok "killed in the catch-up of a recovered set"
else
    not_ok "killed in the catch-up of a recovered set (no pass was seen under way)"
fi
check "after that: converges" wait_lb_converged "$IMG" 40
check "after that: image equals the partition" same_image
check "after that: no full scan" test "$(nscans)" = "$scans0"
check "full scans in all: 1 (first contact)" test "$(nscans)" = 1

done_testing
