#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb --mark: a restore point of one moment of the stream (lb/mark.h).
# Through the whole pipeline (nbdkit + filter, lb, lbd over TLS):
#   - bad labels and a unit without lb are refused with clear messages;
#   - a mark with the writes stopped is a point equal to the device then,
#     served as c1@LABEL, and it stays so while the device changes on;
#   - a mark while one writer writes 4 KiB blocks in order is exact: the
#     point holds a gap-free prefix of the writes, at least every write
#     acknowledged before lb --mark was run and none that started after
#     it returned;
#   - ext4 frozen (fsfreeze) around lb --mark: the point's files are the
#     frozen file system's (md5 of every file), read through nbdfuse;
#   - during a burst that degrades the filter, the mark is refused and no
#     point is listed for it; live again, a mark is taken;
#   - marks in one second (the points' clock stands still here) are
#     points of their own, numbered;
#   - marked points outlive an lbd restart.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires nbdcopy; requires nbdfuse
requires mkfs.ext4; requires fsfreeze; requires python3; requires_root
[ -c /dev/fuse ] || skip "no /dev/fuse"
losetup -f >/dev/null 2>&1 || skip "no free loop device"

port=$(free_port); oport=$(free_port)
mkdir -p "$T/fuse" "$T/mnt" "$T/rfuse" "$T/rmnt"
c1_client
# The points' clock stands still (lbd/points.h): every mark comes in
# the same second, and each must still be a point of its own.
export LIVEBACKUP_TEST_CLOCK=$T/clock
echo 1796601600 >"$T/clock"
mark () { "$LB" --dir="$T" "$@"; }
points () { "$LBD" --control="$T/lbd.ctl" --points "$T/srv/lbd.conf" c1; }
# has_point LABEL: lbd lists a point labelled LABEL, taken by a mark.
has_point () { points | grep -q "  mark  label $1  "; }
point_uri () { echo "nbd://127.0.0.1:$oport/c1%40$1"; }
unmount_all () {
    fsfreeze -u "$T/mnt" 2>/dev/null
    unmount_loops "$T/mnt" "$T/rmnt"
    unmount_fuses "$T/fuse" "$T/rfuse"
    return 0
}
cleanup unmount_all

# --- refusals that need no running lb -----------------------------------
out=$(mark --mark=9lives 1 2>&1); rc=$?
check "a label that starts with a digit: exit 2, naming --mark= ($rc)" \
    sh -c "[ $rc = 2 ] && grep -q -- '--mark=9lives: a label is' <<'E'
$out
E"
out=$(mark --mark='a/b' 1 2>&1); rc=$?
check "a label with a slash: exit 2" test "$rc" = 2
out=$(mark --wait=5 1 2>&1); rc=$?
check "--wait without --mark: exit 2" sh -c "[ $rc = 2 ] && grep -q 'goes with --mark' <<'E'
$out
E"
out=$("$LB" --dir="$T/nowhere" --mark=x 1 2>&1); rc=$?
check "no lb for the unit: exit 2, saying no lb answers ($rc)" \
    sh -c "[ $rc = 2 ] && grep -q 'no lb answers' <<'E'
$out
E"

truncate -s 64M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1
check "first contact converges" wait_lb_converged "$IMG" 60

# --- a quiet mark --------------------------------------------------------
nbdsh -u "$(uri nbd)" -c "h.pwrite(b'alpha...' * 131072, 1 << 20)"
cp "$T/disk" "$T/at-alpha"
out=$(mark --mark=alpha --wait=30 1 2>&1); rc=$?
check "lb --mark=alpha --wait: exit 0, point taken ($out)" \
    sh -c "[ $rc = 0 ] && grep -q \"mark 'alpha': taken at seq [0-9]*: restore point 20\" <<'E'
$out
E"
check "lbd --points lists it, taken by mark, labelled alpha" has_point alpha
check "c1@alpha reads the device as it was at the mark" \
    sh -c "nbdcopy '$(point_uri alpha)' - | cmp -s - '$T/at-alpha'"
nbdsh -u "$(uri nbd)" -c "h.pwrite(b'beta....' * 131072, 0); h.flush()"
check "the image follows the device on" wait_lb_converged "$IMG" 60
check "c1@alpha still reads the mark's moment" \
    sh -c "nbdcopy '$(point_uri alpha)' - | cmp -s - '$T/at-alpha'"
st=$(mark --status 1)
check "lb --status shows the last mark" grep -q "last mark: 'alpha' taken at seq" <<<"$st"
out=$(mark --mark=alpha 1 2>&1); rc=$?
check "a mark placed without --wait: exit 0, placed" \
    sh -c "[ $rc = 0 ] && grep -q \"mark 'alpha': placed at seq\" <<'E'
$out
E"
check "... and its point follows (two points labelled alpha)" \
    wait_for 30 sh -c "[ \$('$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -c '  mark  label alpha  ') = 2 ]"
check "c1@alpha is now the newer one" \
    sh -c "nbdcopy '$(point_uri alpha)' - | cmp -s - '$T/disk'"

# --- a mark among writes in flight: a gap-free prefix -------------------
# The writer writes 4 KiB block i (filled with i+1 as 8 bytes) for i in
# order, one at a time, and after each acknowledgement writes i+1 to a
# progress file: how many writes were acknowledged.
cat >"$T/writer.py" <<'PY'
import nbd, os, struct, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
prog = sys.argv[2]
base = 8 << 20
for i in range(12288):
    h.pwrite(struct.pack('<Q', i + 1) * 512, base + i * 4096)
    with open(prog + '.tmp', 'w') as f:
        f.write(str(i + 1))
    os.rename(prog + '.tmp', prog)
PY
cat >"$T/prefix.py" <<'PY'
import struct, sys
lo, hi = int(sys.argv[2]), int(sys.argv[3])
data = open(sys.argv[1], 'rb').read()[8 << 20:]
k = 0
while k < 12288 and data[k * 4096:(k + 1) * 4096] == struct.pack('<Q', k + 1) * 512:
    k += 1
rest = data[k * 4096:12288 * 4096]
if rest.count(0) != len(rest):
    print("not a prefix: writes after block %d present" % k); sys.exit(1)
if not lo <= k <= hi:
    print("prefix of %d writes, outside [%d, %d]" % (k, lo, hi)); sys.exit(1)
print("prefix of %d writes, within [%d, %d]" % (k, lo, hi))
PY
echo 0 >"$T/progress"
nbdsh -u "$(uri nbd)" -c "h.zero(48 << 20, 8 << 20); h.flush()"
wait_lb_converged "$IMG" 60
python3 "$T/writer.py" "$(uri nbd)" "$T/progress" 2>>"$T/writer.log" &
wpid=$!
cleanup "kill $wpid 2>/dev/null"
wait_for 30 sh -c "[ \$(cat '$T/progress') -ge 2000 ]" || diag "the writer is slow"
before=$(cat "$T/progress")
out=$(mark --mark=inflight 1 2>&1); rc=$?
after=$(cat "$T/progress")
check "a mark among writes: placed ($out)" test "$rc" = 0
wait "$wpid"
check "... its point is taken" wait_for 30 has_point inflight
nbdcopy "$(point_uri inflight)" "$T/inflight.img" 2>>"$T/nbdcopy.log"
res=$(python3 "$T/prefix.py" "$T/inflight.img" "$before" "$((after + 1))" 2>&1)
check "the point holds a gap-free prefix of the writes: $res" \
    python3 "$T/prefix.py" "$T/inflight.img" "$before" "$((after + 1))"
rm -f "$T/inflight.img"

# --- fsfreeze around a mark ----------------------------------------------
fuse_start "$T/fuse" || bail "nbdfuse did not start"
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$T/fuse/nbd" ||
    bail "mkfs.ext4 failed"
mount -o loop,noatime "$T/fuse/nbd" "$T/mnt" || bail "mount failed"
manifest () { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r md5sum); }
cp -a /usr/share/man/man5 "$T/mnt/man5"
dd if=/dev/urandom of="$T/mnt/data" bs=64k count=16 status=none
# No sync first: the freeze itself must bring the file system to disk.
fsfreeze -f "$T/mnt"
manifest "$T/mnt" >"$T/m.frozen"
out=$(mark --mark=frozen 1 2>&1); rc=$?
fsfreeze -u "$T/mnt"
check "lb --mark between fsfreeze -f and -u: placed" test "$rc" = 0
# Change everything at once after the thaw.
rm -rf "$T/mnt/man5"; dd if=/dev/urandom of="$T/mnt/data" bs=64k count=16 status=none
echo after >"$T/mnt/after.txt"; sync
check "... its point is taken" wait_for 30 has_point frozen
restore_ok () {
    fuse_start "$T/rfuse" -r "$(point_uri "$1")" || return 1
    mount -o loop,ro,noload "$T/rfuse/nbd" "$T/rmnt" || { fuse_stop "$T/rfuse"; return 1; }
    manifest "$T/rmnt" >"$T/got.$1"
    umount "$T/rmnt"; fuse_stop "$T/rfuse"
    cmp -s "$T/m.$1" "$T/got.$1" || { diff "$T/m.$1" "$T/got.$1" | head -5 | sed 's/^/#   /'; return 1; }
}
check "c1@frozen mounts and holds exactly the frozen files" restore_ok frozen

# --- a mark during a burst: refused, no point ---------------------------
unmount_loops "$T/mnt"; unmount_fuses "$T/fuse"
stop_lb lb
start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1 --max-rate=1M
check "lb converges again" wait_lb_converged "$IMG" 60
head -c 40M /dev/urandom >"$T/burst"
nbdcopy "$T/burst" "$(uri nbd)" 2>>"$T/nbdcopy.log"
check "the burst degrades the filter" \
    wait_for 20 sh -c "'$LB' --dir='$T' --status 1 | grep -q 'filter degraded'"
out=$(mark --mark=during --wait=10 1 2>&1); rc=$?
check "a mark during the burst: exit 1 ($rc), saying why: $(head -1 <<<"$out")" \
    sh -c "[ $rc = 1 ] && grep -Eq 'refused: (the filter is degraded|not placed within)' <<'E'
$out
E"
check "... and no point is listed for it" sh -c "! points | grep -q during"
stop_lb lb
start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1
check "without the rate limit, lb catches up" wait_lb_converged "$IMG" 120
out=$(mark --mark=after-burst --wait=30 1 2>&1); rc=$?
check "live again, a mark is taken ($rc)" test "$rc" = 0
check "c1@after-burst reads the device" \
    sh -c "nbdcopy '$(point_uri after-burst)' - | cmp -s - '$T/disk'"

marked_ids () { points | grep '  mark  ' | cut -d' ' -f1; }
check "marks in one second are points of their own: $(marked_ids | tr '\n' ' ')" \
    test "$(marked_ids | sort -u | wc -l)" = 5

# --- marked points last ---------------------------------------------------
old=$(lbd_pid lbd); kill "$old"; wait "$old" 2>/dev/null
start_lbd lbd "$T/srv/lbd.conf"
both_listed () { has_point frozen && has_point after-burst; }
check "after an lbd restart, the marked points are listed" both_listed
check "... and c1@frozen still holds the frozen files" restore_ok frozen
check "replication goes on" wait_lb_converged "$IMG" 60
done_testing
