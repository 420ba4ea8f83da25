#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb and lbd as conventional daemons:
#  - --pidfile: written with the pid (mode 0644), refused while a running
#    process holds it (the message names its pid), taken over from one
#    that died, removed at a clean exit;
#  - --daemon: the starting process returns 0 once the daemon is up and
#    its pid file written; it logs to syslog (here a datagram socket of
#    the test's own, named by LIVEBACKUP_SYSLOG_SOCKET) in syslog's
#    format, facility daemon, tag NAME[PID]; SIGTERM stops it cleanly;
#  - --log=syslog in the foreground, --log=stderr with --daemon (kept
#    only where standard error is not a terminal: refused on one), and a
#    warning on standard error where no syslog listens;
#  - -d keeps the process in the foreground even with --daemon;
#  - -v logs debug lines (lb's and lbd's sync points), and without it
#    there are none.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires script
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"

port=$(free_port)
one_client
truncate -s 16M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=2 conv=notrunc status=none
start_nbdkit nbd "$T/disk"

# The test's syslog: every datagram on $T/log.sock, one per line.
/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
out = open(sys.argv[2], "ab", buffering=0)
while True:
    out.write(s.recv(65536) + b"\n")
' "$T/log.sock" "$T/syslog" &
cleanup "kill $!"
wait_for 10 test -S "$T/log.sock" || bail "the test's syslog did not start"
export LIVEBACKUP_SYSLOG_SOCKET=$T/log.sock
# syslogged PATTERN: the test's syslog got a line matching PATTERN (ERE).
syslogged () { grep -qE -- "$1" "$T/syslog"; }
gone () { ! kill -0 "$1" 2>/dev/null; }

# --- lbd --daemon --pidfile ---------------------------------------------------
conf=$T/srv/lbd.conf
"$LBD" --daemon --pidfile="$T/lbd.pid" --control="$T/lbd.ctl" "$conf" 2>"$T/lbd.err"
rc=$?
check "lbd --daemon returns 0 once the daemon is up (status $rc)" test "$rc" = 0
pid=$(cat "$T/lbd.pid" 2>/dev/null)
cleanup "kill -9 $pid"
check "... its pid file written, with a live pid" test -n "$pid" -a -d "/proc/$pid"
check "... mode 0644" test "$(stat -c %a "$T/lbd.pid")" = 644
check "... detached: a process of its own session" \
    test "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid"
check "... nothing on standard error" test ! -s "$T/lbd.err"
check "it logs to syslog: facility daemon, tag lbd[PID]" \
    wait_for 10 syslogged "^<30>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} lbd\[$pid\]: listening on 127.0.0.1/$port for 1 client$"
out=$("$LBD" --pidfile="$T/lbd.pid" --control="$T/lbd2.ctl" "$conf" 2>&1); rc=$?
check "a second lbd with the same pid file is refused (status $rc)" \
    test "$rc" = 1 -a "$out" = "lbd: --pidfile=$T/lbd.pid: held by running process $pid"
check "... and the first runs on" test -d "/proc/$pid"
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "lb syncs to the daemon" wait_lb_converged "$IMG" 60
kill "$pid"
check "SIGTERM: the daemon stops" wait_for 20 gone "$pid"
check "... removing its pid file" test ! -e "$T/lbd.pid"
check "... having logged why, to syslog" syslogged "lbd\[$pid\]: shutting down \(signal 15\)$"
check "... and said goodbye to lb" syslogged "lbd\[$pid\]: client .*: lbd is shutting down: said goodbye"
stop_lb lb

# A pid file left by a process that died is taken over.
echo 999999 >"$T/stale.pid"
start_lbd lbd "$conf" --pidfile="$T/stale.pid"
check "a stale pid file is taken over" wait_for 10 test "$(cat "$T/stale.pid")" = "$(lbd_pid lbd)"
kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"; rc=$?
check "lbd in the foreground exits 0 on SIGTERM (status $rc)" test "$rc" = 0
check "... and removes the pid file" test ! -e "$T/stale.pid"

# -d wins over --daemon: the process stays, and logs to stderr.
rm -f "$T/lbd.ctl"
"$LBD" --daemon -d --control="$T/lbd.ctl" "$conf" 2>>"$T/lbd-d.log" &
dpid=$!
cleanup "kill -9 $dpid"
check "-d keeps lbd in the foreground with --daemon" wait_for 10 test -S "$T/lbd.ctl"
check "... logging to stderr" grep -q "lbd: listening on 127.0.0.1/$port" "$T/lbd-d.log"
kill "$dpid"; wait "$dpid"; rc=$?
check "... and it is our child, exiting 0 (status $rc)" test "$rc" = 0

# --- --log ------------------------------------------------------------------
out=$(script -qec "'$LBD' --daemon --log=stderr --control='$T/x.ctl' '$conf'" /dev/null); rc=$?
check "--daemon --log=stderr on a terminal is refused (status $rc)" \
    sh -c "test '$rc' = 2 && echo '$out' | grep -q 'standard error is a terminal'"
"$LBD" --daemon --log=stderr --pidfile="$T/lbd.pid" --control="$T/lbd.ctl" "$conf" \
    2>>"$T/lbd-stderr.log"
pid=$(cat "$T/lbd.pid")
cleanup "kill -9 $pid"
check "--daemon --log=stderr keeps a standard error that is a file" \
    wait_for 10 grep -q "lbd: listening on 127.0.0.1/$port" "$T/lbd-stderr.log"
kill "$pid"; wait_for 20 gone "$pid"
check "... to the end" grep -q "lbd: shutting down (signal 15)" "$T/lbd-stderr.log"
out=$(LIVEBACKUP_SYSLOG_SOCKET=$T/nothing.sock "$LBD" --daemon \
      --pidfile="$T/lbd.pid" --control="$T/lbd.ctl" "$conf" 2>&1)
pid=$(cat "$T/lbd.pid")
cleanup "kill -9 $pid"
check "no syslog listening: a warning on the terminal before detaching" \
    test "$out" = "lbd: warning: no syslog at $T/nothing.sock (No such file or directory): messages are lost until one listens there"
kill "$pid"; wait_for 20 gone "$pid"

# --- lb -----------------------------------------------------------------------
start_lbd lbd "$conf" -v
: >"$T/syslog"
"$LB" --daemon --pidfile="$T/lb.pid" --dir="$T" --retry=1 -v 1 "$T/disk" \
    127.0.0.1 "$port" "$T/key" 2>"$T/lb.err"
rc=$?
check "lb --daemon returns 0 once up (status $rc)" test "$rc" = 0
pid=$(cat "$T/lb.pid" 2>/dev/null)
cleanup "kill -9 $pid"
check "... its pid file written, with a live pid" test -n "$pid" -a -d "/proc/$pid"
check "... nothing on standard error" test ! -s "$T/lb.err"
nbdsh -u "$(uri nbd)" -c 'import os; h.pwrite(os.urandom(65536), 1 << 20); h.flush()'
check "lb logs to syslog, tag lb[PID]" \
    wait_for 20 syslogged "^<30>.* lb\[$pid\]: live \(image consistent\)$"
check "lb -v logs its sync points (debug)" wait_for 10 syslogged "^<31>.* lb\[$pid\]: synced up to seq"
check "lbd -v logs its sync points (debug)" grep -q "lbd: client .*: durable up to seq" "$T/lbd.log"
out=$("$LB" --pidfile="$T/lb.pid" --dir="$T" 1 "$T/disk" 127.0.0.1 "$port" "$T/key" 2>&1); rc=$?
check "a second lb with the same pid file is refused (status $rc)" \
    test "$rc" = 1 -a "$out" = "lb: --pidfile=$T/lb.pid: held by running process $pid"
kill "$pid"
check "SIGTERM: lb stops" wait_for 20 gone "$pid"
check "... removing its pid file" test ! -e "$T/lb.pid"
check "... saying why" syslogged "lb\[$pid\]: exiting$"
kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"

start_lbd lbd2 "$conf"
"$LB" --log=syslog --dir="$T" --retry=1 1 "$T/disk" 127.0.0.1 "$port" "$T/key" \
    2>"$T/lb-fg.err" &
fpid=$!
cleanup "kill -9 $fpid"
nbdsh -u "$(uri nbd)" -c 'import os; h.pwrite(os.urandom(65536), 2 << 20); h.flush()'
check "lb --log=syslog in the foreground" \
    wait_for 20 syslogged "lb\[$fpid\]: connected to 127.0.0.1/$port"
check "... and nothing on stderr" test ! -s "$T/lb-fg.err"
check "without -v, no debug lines" sh -c "! grep -q '^<31>.* lb\[$fpid\]' '$T/syslog'"
check "... nor in lbd's log" sh -c "! grep -q 'durable up to seq' '$T/lbd2.log'"
kill "$fpid"; wait "$fpid"; rc=$?
check "lb exits 0 on SIGTERM (status $rc)" test "$rc" = 0
done_testing
