# SPDX-License-Identifier: BSD-3-Clause
# Shared helpers for livebackup's shell tests.  Source it first thing:
#   . "${top_srcdir:-.}/tests/functions.sh"
# Every test gets its own temp folder ($T), used as livewatch-dir too, so
# tests run in parallel without sharing units or files; everything it
# starts is stopped by the EXIT trap, whether the test passes or not.

set -u
# nbdsh runs "python3 -m nbd": Debian's python3 must come first.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
FILTER=$top_builddir/.libs/nbdkit-livewatch-filter.so
MIRROR=$top_builddir/tests/lw-mirror

T=$(mktemp -d /tmp/lbtest.XXXXXX)
_cleanups=()
_tap_n=0
_tap_failed=0

# cleanup CMD...: run CMD at exit, last registered first.
cleanup () { _cleanups+=("$*"); }
_run_cleanups () {
    local i
    for (( i=${#_cleanups[@]}-1; i>=0; i-- )); do
        eval "${_cleanups[$i]}" >/dev/null 2>&1 || :
    done
    [ -n "${LB_KEEP_TMP:-}" ] && echo "# kept $T" || rm -rf "$T"
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM

# skip REASON: this machine lacks a capability (exit 77, reason shown).
skip () { echo "1..0 # SKIP $*"; exit 77; }
requires () { command -v "$1" >/dev/null 2>&1 || skip "$1 not installed"; }
requires_root () { [ "$(id -u)" = 0 ] || skip "needs root"; }

# TAP output.
ok () { _tap_n=$((_tap_n+1)); echo "ok $_tap_n - $*"; }
not_ok () { _tap_n=$((_tap_n+1)); _tap_failed=$((_tap_failed+1)); echo "not ok $_tap_n - $*"; }
# check DESCRIPTION CMD...: ok if CMD succeeds.
check () { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
diag () { echo "# $*"; }
# Call at the end: prints the plan, exits 1 if anything failed.
done_testing () { echo "1..$_tap_n"; [ "$_tap_failed" = 0 ]; exit $?; }
# bail REASON: give up now (counts as failure).
bail () { echo "Bail out! $*"; exit 1; }

# wait_for SECONDS CMD...: poll CMD every 0.1 s; fail after SECONDS.
wait_for () {
    local limit=$(( $1 * 10 )) i=0; shift
    until "$@" >/dev/null 2>&1; do
        i=$((i+1)); [ $i -ge $limit ] && return 1
        sleep 0.1
    done
}

# start_nbdkit NAME DISK [EXTRA NBDKIT ARGS...]: serve DISK through the
# filter on $T/NAME.sock, channel unit 1 in $T; waits for the channel.
start_nbdkit () { local name=$1; shift; start_unit "$name" "$T" "$@"; }
stop_nbdkit () {
    local name=$1 pid
    pid=$(cat "$T/$name.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null
    wait_for 20 sh -c "! kill -0 $pid 2>/dev/null"
    rm -f "$T/$name.pid"
}
uri () { echo "nbd+unix:///?socket=$T/$1.sock"; }

# start_mirror DISK IMAGE [lw-mirror options]: the test consumer, in
# the background; its pid in $MIRROR_PID, its log in $T/mirror.log.
start_mirror () {
    local disk=$1 img=$2; shift 2
    "$MIRROR" --dir="$T" --state="$img.state" --max-seconds=600 "$@" \
        1 "$disk" "$img" 2>>"$T/mirror.log" &
    MIRROR_PID=$!
    cleanup "kill -9 $MIRROR_PID"
}

# stat_of KEY: one value from the channel's header.
stat_of () { "$MIRROR" --stat --dir="$T" 1 | sed -n "s/^$1=//p"; }
converged () { [ "$(stat_of converged)" = 1 ]; }
# wait_converged [SECONDS]: writes have stopped; wait for the mirror.
wait_converged () {
    wait_for "${1:-60}" converged || {
        diag "not converged:"; "$MIRROR" --stat --dir="$T" 1 | sed 's/^/#   /'
        tail -5 "$T/mirror.log" | sed 's/^/#   /'
        return 1
    }
}
same () { cmp -s "$1" "$2"; }

# --- lb and lbd ----------------------------------------------------------
LB=$top_builddir/lb/lb
LBD=$top_builddir/lbd/lbd

# free_port: a TCP port on 127.0.0.1 nobody listens on right now.
free_port () {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# make_key FILE: a random key file, mode 0600.
make_key () { head -c 64 /dev/urandom >"$1"; chmod 600 "$1"; }

# one_client [ADDR]: the usual server side: a key $T/key and an lbd
# config $T/srv/lbd.conf with one client (file client1/disk.img, its key
# beside it) listening on ADDR (default 127.0.0.1) and $port, which is
# picked here unless set.  Sets port and IMG (the image's path).
one_client () {
    : "${port:=$(free_port)}"
    mkdir -p "$T/srv/client1"
    make_key "$T/key"
    cp "$T/key" "$T/srv/client1/key"
    echo "client file=client1/disk.img key=client1/key listen=${1:-127.0.0.1}/$port type=simple" \
        >"$T/srv/lbd.conf"
    IMG=$T/srv/client1/disk.img
}

# c1_client [OPTIONS...]: the server side of the history tests: a key
# $T/key and an lbd config $T/srv/lbd.conf with client c1 (file
# c1/disk.img, its key beside it; OPTIONS added to its line, e.g.
# history=hourly:24) on 127.0.0.1/$port, and a plain export on $oport.
# Sets IMG.
c1_client () {
    mkdir -p "$T/srv/c1"
    make_key "$T/key"; cp "$T/key" "$T/srv/c1/key"
    {
        echo "client name=c1 file=c1/disk.img key=c1/key listen=127.0.0.1/$port $*"
        echo "export listen=127.0.0.1/$oport tls=off"
    } >"$T/srv/lbd.conf"
    IMG=$T/srv/c1/disk.img
}

# start_lbd NAME CONFIG [lbd options]: lbd in the foreground, backgrounded;
# pid in $T/NAME.lbdpid, log in $T/NAME.log, control socket $T/NAME.ctl.
start_lbd () {
    local name=$1 conf=$2; shift 2
    # A killed lbd leaves its control socket behind.
    rm -f "$T/$name.ctl"
    "$LBD" --control="$T/$name.ctl" "$@" "$conf" 2>>"$T/$name.log" &
    echo $! >"$T/$name.lbdpid"
    # By pid file: a restarted test must not kill a reused pid at exit.
    cleanup "kill -9 \$(cat $T/$name.lbdpid 2>/dev/null) 2>/dev/null"
    wait_for 10 test -S "$T/$name.ctl" || { cat "$T/$name.log"; bail "lbd did not start"; }
}
lbd_pid () { cat "$T/$1.lbdpid"; }

# start_lb NAME UNIT_DIR DISK PORT KEY [lb options]: lb in the background.
start_lb () {
    local name=$1 dir=$2 disk=$3 port=$4 key=$5; shift 5
    "$LB" --dir="$dir" --retry=1 "$@" 1 "$disk" "${LB_HOST:-127.0.0.1}" \
        "$port" "$key" 2>>"$T/$name.log" &
    echo $! >"$T/$name.lbpid"
    cleanup "kill -9 \$(cat $T/$name.lbpid 2>/dev/null) 2>/dev/null"
}
lb_pid () { cat "$T/$1.lbpid"; }
# state_of IMAGE KEY: a value from lbd's state file beside IMAGE.
state_of () { sed -n "s/^$2=//p" "$1.state" 2>/dev/null; }
# lb_live IMAGE: the channel converged and lbd's image says live.
lb_converged () { converged && [ "$(state_of "$1" phase)" = live ]; }
wait_lb_converged () {
    wait_for "${2:-60}" lb_converged "$1" || {
        diag "not converged:"; "$MIRROR" --stat --dir="$T" 1 | sed 's/^/#   /'
        sed 's/^/#   state: /' "$1.state" 2>/dev/null
        return 1
    }
}

# --- several units, one test ---------------------------------------------
# start_unit NAME DIR DISK [EXTRA NBDKIT ARGS...]: like start_nbdkit, but
# the channel (unit 1) lives in DIR, so that each nbdkit has its own.
start_unit () {
    local name=$1 dir=$2 disk=$3; shift 3
    mkdir -p "$dir"
    # nbdkit leaves its socket behind when stopped.
    rm -f "$T/$name.pid" "$T/$name.sock"
    nbdkit -U "$T/$name.sock" -P "$T/$name.pid" -v \
        --filter="$FILTER" file "$disk" \
        livewatch-unit=1 livewatch-dir="$dir" "$@" 2>>"$T/$name.log" &
    wait_for 20 test -s "$T/$name.pid" || { tail "$T/$name.log"; bail "nbdkit $name did not start"; }
    cleanup "kill \$(cat $T/$name.pid 2>/dev/null) 2>/dev/null"
    wait_for 20 "$MIRROR" --stat --dir="$dir" 1 || bail "channel in $dir not ready"
}
# make_clients SIZE MB NAME...: for each NAME, a key $T/NAME.key, its
# copy $T/srv/NAME/key for lbd, and a partition $T/NAME.disk of SIZE
# with MB MiB of random data somewhere in it.
make_clients () {
    local size=$1 mb=$2 c; shift 2
    for c in "$@"; do
        mkdir -p "$T/srv/$c"
        make_key "$T/$c.key"
        cp "$T/$c.key" "$T/srv/$c/key"; chmod 600 "$T/srv/$c/key"
        truncate -s "$size" "$T/$c.disk"
        dd if=/dev/urandom of="$T/$c.disk" bs=1M count="$mb" \
            seek=$((RANDOM % ($(numfmt --from=iec "$size") / 1048576 - mb))) \
            conv=notrunc status=none
    done
}
# converged_in DIR IMAGE: unit 1 in DIR converged, IMAGE's state live.
converged_in () {
    [ "$("$MIRROR" --stat --dir="$1" 1 | sed -n 's/^converged=//p')" = 1 ] &&
        [ "$(state_of "$2" phase)" = live ] && [ "$(state_of "$2" consistent)" = 1 ]
}
wait_converged_in () {
    wait_for "${3:-60}" converged_in "$1" "$2" || {
        diag "not converged ($1):"; "$MIRROR" --stat --dir="$1" 1 | sed 's/^/#   /'
        sed 's/^/#   state: /' "$2.state" 2>/dev/null
        return 1
    }
}
# stop_lb NAME: SIGTERM, and wait for it.
stop_lb () {
    local pid; pid=$(lb_pid "$1")
    kill "$pid" 2>/dev/null
    wait_for 20 sh -c "! kill -0 $pid 2>/dev/null"
    wait "$pid" 2>/dev/null
    return 0
}
# logged N FILE PATTERN: FILE shows PATTERN (fixed string) within N s.
logged () { wait_for "$1" grep -qF -- "$3" "$2"; }

# unmount_loops DIR...: unmount the loop mounts at each DIR, a few tries
# each (a killed writer's child may still hold one), lazily at last.
unmount_loops () {
    local m i
    for m; do
        for i in 1 2 3 4 5; do
            mountpoint -q "$m" || break
            umount "$m" 2>/dev/null || sleep 1
        done
        mountpoint -q "$m" && umount -l "$m"
    done
    return 0
}
# fuse_start DIR [NBDFUSE ARGS...]: nbdfuse on DIR, by default serving
# nbdkit's $T/nbd.sock read-write (else the ARGS: "-r URI", or "-r [
# CMD ]"), in the background, its pid in DIR.fusepid, its log DIR.log;
# waits until DIR/nbd is there (fails after 20 s).  fuse_stop ends it.
fuse_start () {
    local dir=$1; shift
    if [ $# = 0 ]; then set -- --unix "$T/nbd.sock"; fi
    if [ "$1" = -r ]; then shift; nbdfuse -r "$dir" "$@" 2>>"$dir.log" &
    else nbdfuse "$dir" "$@" 2>>"$dir.log" &
    fi
    echo $! >"$dir.fusepid"
    wait_for 20 test -e "$dir/nbd"
}
# fuse_stop DIR: unmount the nbdfuse at DIR and wait for it to exit
# (its pid in DIR.fusepid).
fuse_stop () {
    local pid
    pid=$(cat "$1.fusepid" 2>/dev/null)
    fusermount -u "$1" || return 1
    [ -n "$pid" ] && wait_for 20 sh -c "! kill -0 $pid 2>/dev/null"
    rm -f "$1.fusepid"
    return 0
}
# unmount_fuses DIR...: unmount the FUSE mounts (nbdfuse) at each DIR.
unmount_fuses () {
    local m
    for m; do
        mountpoint -q "$m" && { fusermount -u "$m" || umount -l "$m"; }
    done
    return 0
}

# lbd_up: lbd on $T/srv/lbd.conf in the background, its pid in $LBD_PID
# (a test that kills it and starts another needs the pid of this one,
# which start_lbd's pid file may no longer name); waits for its control
# socket.
lbd_up () {
    rm -f "$T/lbd.ctl"          # a killed lbd leaves it behind
    "$LBD" --control="$T/lbd.ctl" "$T/srv/lbd.conf" 2>>"$T/lbd.log" &
    LBD_PID=$!
    wait_for 10 test -S "$T/lbd.ctl" || { cat "$T/lbd.log"; bail "lbd did not start"; }
}

# --- wire bytes, counted outside lb and lbd ----------------------------
# start_relay NAME TARGET_PORT [relay.py options]: a relay
# (tests/relay.py) from a free port, set in $rport, to
# 127.0.0.1:TARGET_PORT, counting the bytes it moves in $T/NAME.count;
# wire_up NAME prints those lb sent, once no connection is open through
# the relay (within 10 s).
start_relay () {
    local name=$1 tport=$2; shift 2
    rport=$(free_port)
    while [ "$rport" = "$tport" ]; do rport=$(free_port); done
    /usr/bin/python3 "$top_srcdir/tests/relay.py" "$@" --count="$T/$name.count" \
        "$rport" 127.0.0.1 "$tport" "$T/$name.relaypid" 2>>"$T/$name.log" &
    cleanup "kill \$(cat $T/$name.relaypid 2>/dev/null) 2>/dev/null"
    wait_for 10 test -s "$T/$name.count" || bail "relay $name did not start"
}
wire_idle () { [ "$(cut -d' ' -f3 "$T/$1.count")" = 0 ]; }
wire_up () {
    wait_for 10 wire_idle "$1" || bail "relay $1: a connection stays open"
    cut -d' ' -f1 "$T/$1.count"
}
# wire_up_now NAME: the same with lb connected, once the count has not
# moved for half a second (lb converged: only keepalives are left).
wire_up_now () {
    local a b
    b=$(cut -d' ' -f1 "$T/$1.count")
    for _ in $(seq 1 50); do
        a=$b
        sleep 0.5
        b=$(cut -d' ' -f1 "$T/$1.count")
        [ "$a" = "$b" ] && break
    done
    echo "$b"
}
