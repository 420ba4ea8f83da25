#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The schedule during a catch-up (lbd/retain.c, history_hold): lbd never
# takes a point of an image that block copies are changing, but keeps
# the image's last consistent state as a point ("catch-up") when a
# catch-up begins.  When the image is consistent again it keeps that
# point if one fell due meanwhile, and drops it otherwise.
#   - during a rate-limited catch-up after a burst, the held point reads
#     what lbd's live export serves then (its last consistent state, from
#     the in-memory snapshot: another mechanism), holding the data
#     written before the burst;
#   - the clock passes the hour meanwhile: once live, the held point
#     stays, and the schedule takes a point of the consistent image too;
#   - another catch-up within the hour: its held point is dropped;
#   - on a quiet image, the next hour's point is of the end of the quiet:
#     taken before that hour's first write is applied.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires nbdcopy; requires python3

port=$(free_port); oport=$(free_port)
c1_client history=hourly:24
export LIVEBACKUP_TEST_CLOCK=$T/clock
MON=1796601600       # Monday 2026-12-07 00:00 UTC
echo $MON >"$T/clock"
points () { "$LBD" --control="$T/lbd.ctl" --points "$T/srv/lbd.conf" c1; }
held_id () { points | sed -n 's/^\([0-9TZ]*\)  .*  catch-up  .*/\1/p' | tail -1; }
count () { points | grep -c "  $1  "; }
export_uri () { echo "nbd://127.0.0.1:$oport/$1"; }
# burst LIMIT: lb under --max-rate=LIMIT, 40 MiB written at once: the
# filter degrades and the catch-up runs for tens of seconds.
burst () {
    stop_lb lb
    start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1 --max-rate="$1"
    wait_lb_converged "$IMG" 60 || return 1
    head -c 40M /dev/urandom >"$T/burst"
    nbdcopy --destination-is-zero "$T/burst" "$(uri nbd)" 2>>"$T/nbdcopy.log"
}
catching_up () { [ "$(state_of "$IMG" consistent)" = 0 ]; }
live_again () {
    stop_lb lb
    start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1
    wait_lb_converged "$IMG" 120
}

truncate -s 64M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1
check "first contact converges" wait_lb_converged "$IMG" 60
check "the schedule takes the first point" wait_for 20 sh -c "'$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -q '^20261207T0000Z  .*  schedule  '"
nbdsh -u "$(uri nbd)" -c "h.pwrite(b'before..' * 131072, 48 << 20); h.flush()"
check "the data before the burst is in the image" wait_lb_converged "$IMG" 60
dd if="$T/disk" of="$T/before" bs=1M skip=48 count=1 status=none

# Half past: a catch-up begins, nothing is due yet.
echo $((MON + 1830)) >"$T/clock"
burst 1M
check "the burst makes the image inconsistent" wait_for 60 catching_up
have_held () { [ -n "$(held_id)" ]; }
check "a point is held at the start of the catch-up" wait_for 20 have_held
id=$(held_id)
diag "held point: $id"
nbdcopy "$(export_uri c1)" "$T/live.img" 2>>"$T/nbdcopy.log"
nbdcopy "$(export_uri "c1%40$id")" "$T/held.img" 2>>"$T/nbdcopy.log"
check "still catching up after both copies" catching_up
check "the held point reads what the live export serves meanwhile (its last consistent state)" \
    cmp -s "$T/live.img" "$T/held.img"
check "... with the data written before the burst" \
    sh -c "dd if='$T/held.img' bs=1M skip=48 count=1 status=none | cmp -s - '$T/before'"
check "no point is taken while the image is inconsistent" test "$(count schedule)" = 1
rm -f "$T/live.img" "$T/held.img"

# The hour passes during the catch-up: the held point stays.
echo $((MON + 2 * 3600)) >"$T/clock"
check "lb catches up" live_again
check "once live, the held point $id is kept (a point fell due meanwhile)" \
    sh -c "'$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -q '^$id  .*  catch-up  '"
check "... and the schedule takes a point of the consistent image" \
    wait_for 20 sh -c "'$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -q '^20261207T0200Z  .*  schedule  '"
check "lbd logged why it kept it" grep -q "point $id, the image as it last was, kept" "$T/lbd.log"

# Another catch-up within the hour: its held point is not needed.
echo $((MON + 2 * 3600 + 900)) >"$T/clock"
burst 1M
check "a second burst, a second held point" \
    wait_for 60 sh -c "[ \$('$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -c '  catch-up  ') = 2 ]"
check "lb catches up again" live_again
check "nothing fell due: the second held point is dropped" \
    wait_for 20 sh -c "[ \$('$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -c '  catch-up  ') = 1 ]"
check "the first one is still there" \
    sh -c "'$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -q '^$id  '"
# A quiet image: the hour's point is of the end of the quiet, taken
# before the hour's first write is applied, not after it.
echo $((MON + 3 * 3600 + 60)) >"$T/clock"
nbdsh -u "$(uri nbd)" -c "h.pwrite(b'after...' * 131072, 50 << 20); h.flush()"
check "the first write of the hour reaches the image" wait_lb_converged "$IMG" 60
check "the hour's point is taken" wait_for 20 sh -c "'$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -q '^20261207T0301Z  .*  schedule  '"
dd if="$T/disk" of="$T/after" bs=1M skip=50 count=1 status=none
nbdcopy "$(export_uri c1%4020261207T0301Z)" "$T/quiet.img" 2>>"$T/nbdcopy.log"
head -c 1M /dev/zero >"$T/zero"
check "... without that write (zeroes where it went)" \
    sh -c "dd if='$T/quiet.img' bs=1M skip=50 count=1 status=none | cmp -s - '$T/zero'"
check "... but with everything before it (the data before the bursts)" \
    sh -c "dd if='$T/quiet.img' bs=1M skip=48 count=1 status=none | cmp -s - '$T/before'"
rm -f "$T/quiet.img"
done_testing
