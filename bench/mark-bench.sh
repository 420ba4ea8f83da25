#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# mark-bench.sh: how long `lb --mark` holds a frozen file system, i.e.
# how long writes wait in `fsfreeze -f; lb --mark L 1; fsfreeze -u`.
#
#   bench/mark-bench.sh            (from the build folder, as root)
#
# Through the whole pipeline (nbdkit + livewatch -> lb -> TLS -> lbd),
# ext4 mounted through nbdfuse.  Interleaved, BENCH_REPS [15] times:
#   S  `lb --status 1`: the control socket's round trip alone (baseline)
#   M  `lb --mark=mN 1` while idle: placed, returns
#   Z  `fsfreeze -f; fsfreeze -u` with a writer running (no mark)
#   F  `fsfreeze -f; lb --mark; fsfreeze -u` with a writer running
#      (dd of 4 KiB blocks in a loop, bounded): the freeze as a user
#      sees it
# Reports medians, min-max, the ratios to S, and F - Z (what the mark
# adds to a freeze); and how long lbd
# then took to list the point (placement to point), from lb's log.
# Not part of make check (timings).
set -u
export top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/bench/bench-lib.sh"
REPS=${BENCH_REPS:-15}
port=$(free_port); oport=$(free_port)
c1_client
mkdir -p "$T/fuse" "$T/mnt"
truncate -s 256M "$T/disk"
start_nbdkit nbd "$T/disk"
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key" --name=c1
wait_lb_converged "$IMG" 60 || bail "lb did not converge"
unmount_all () { fsfreeze -u "$T/mnt" 2>/dev/null; unmount_loops "$T/mnt"; unmount_fuses "$T/fuse"; }
cleanup unmount_all
fuse_start "$T/fuse" || bail "nbdfuse did not start"
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$T/fuse/nbd" || bail "mkfs failed"
mount -o loop,noatime "$T/fuse/nbd" "$T/mnt" || bail "mount failed"
wait_lb_converged "$IMG" 60 || bail "lb did not converge after mkfs"

ms () { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) * 1000}'; }
S=() M=() F=() Z=()
writer () {
    local i=0
    while [ $i -lt 20000 ] && [ -e "$T/writing" ]; do
        dd if=/dev/urandom of="$T/mnt/w" bs=4k count=1 seek=$((i % 2048)) conv=notrunc,fsync status=none
        i=$((i + 1))
    done
}
load0=$(cut -d' ' -f1 /proc/loadavg)
for r in $(seq 1 "$REPS"); do
    t0=$(now); "$LB" --dir="$T" --status 1 >/dev/null; t1=$(now)
    S+=("$(ms "$t0" "$t1")")
    t0=$(now); "$LB" --dir="$T" --mark="m$r" 1 >/dev/null || diag "mark m$r: $?"; t1=$(now)
    M+=("$(ms "$t0" "$t1")")
    touch "$T/writing"; writer & wpid=$!
    sleep 0.3
    t0=$(now); fsfreeze -f "$T/mnt"; fsfreeze -u "$T/mnt"; t1=$(now)
    Z+=("$(ms "$t0" "$t1")")
    sleep 0.1
    t0=$(now)
    fsfreeze -f "$T/mnt"; "$LB" --dir="$T" --mark="f$r" 1 >/dev/null || diag "mark f$r: $?"
    fsfreeze -u "$T/mnt"
    t1=$(now)
    F+=("$(ms "$t0" "$t1")")
    rm -f "$T/writing"; wait "$wpid"
done
load1=$(cut -d' ' -f1 /proc/loadavg)
med () { printf '%s\n' "$@" | median; }
mS=$(med "${S[@]}") mM=$(med "${M[@]}") mF=$(med "${F[@]}") mZ=$(med "${Z[@]}")
range () { printf '%s\n' "$@" | sort -g | sed -n '1p;$p' | paste -sd- ; }
marked () { "$LBD" --control="$T/lbd.ctl" --points "$T/srv/lbd.conf" c1 | grep -c '  mark  '; }
wait_for 30 sh -c "[ \$('$LBD' --control='$T/lbd.ctl' --points '$T/srv/lbd.conf' c1 | grep -c '  mark  ') = $((2 * REPS)) ]"
points=$(marked)
# Placement to point: lb's log, "placed at" then "restore point ... taken".
lag=$(awk '
    /mark .* placed at seq/ { split($1, t, ":"); s[$NF] = t[1]*3600 + t[2]*60 + t[3] }
    /mark at seq .*: restore point .* taken/ { split($1, t, ":"); q = $6; sub(":", "", q);
        if (q in s) printf "%.0f\n", (t[1]*3600 + t[2]*60 + t[3] - s[q]) * 1000 }' "$T/lb.log" | sort -n)
mlag=$(med $lag)
cat <<EOF
# mark-bench: $REPS interleaved reps, load $load0 -> $load1, $(nproc) cores
| what | median ms | min-max ms | ratio to S |
|---|---|---|---|
| S lb --status (control round trip) | $mS | $(range "${S[@]}") | 1.00 |
| M lb --mark, idle | $mM | $(range "${M[@]}") | $(div "$mM" "$mS") |
| Z fsfreeze -f; fsfreeze -u, writer running (no mark) | $mZ | $(range "${Z[@]}") | $(div "$mZ" "$mS") |
| F fsfreeze -f; lb --mark; fsfreeze -u, writer running | $mF | $(range "${F[@]}") | $(div "$mF" "$mS") |
placement to point (lbd's MARKED), median: ${mlag:-?} ms; marked points listed: $points of $((2 * REPS))
EOF
