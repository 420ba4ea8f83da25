#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb's exit status: 2 at once, with a message, for what retrying cannot
# heal (a malformed argument, a key file or DEVICE that cannot be read, a
# channel that is not to be trusted or of another layout); 1 for another
# consumer on the unit; and no exit at all for what may heal (a name the
# DNS does not know now, a refused connection): lb retries.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit

port=$(free_port)
one_client
truncate -s 16M "$T/disk"
start_nbdkit nbd "$T/disk"

# lb_exits STATUS MESSAGE DESC ARGS...: lb ARGS exits STATUS within 5 s,
# printing MESSAGE (a fixed string) on standard error.
lb_exits () {
    local want=$1 msg=$2 desc=$3 out rc t0; shift 3
    t0=$(date +%s)
    out=$(timeout 20 "$LB" "$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && [ $(( $(date +%s) - t0 )) -le 5 ] &&
       printf '%s\n' "$out" | grep -qF -- "$msg"; then
        ok "$desc: exit $want at once"
    else
        not_ok "$desc: exit $want at once"
        diag "exit $rc after $(( $(date +%s) - t0 )) s: $out"
    fi
}
ARGS=(1 "$T/disk" 127.0.0.1 "$port" "$T/key")
lb_exits 2 "lb: UNIT=x: a number from 0 to" "a bad UNIT" \
    --dir="$T" x "$T/disk" 127.0.0.1 "$port" "$T/key"
lb_exits 2 "lb: PORT=nosuchservice: neither a port number (1 to 65535) nor a service name" \
    "a port that is no service name" --dir="$T" 1 "$T/disk" 127.0.0.1 nosuchservice "$T/key"
lb_exits 2 "lb: PORT=0:" "port 0" --dir="$T" 1 "$T/disk" 127.0.0.1 0 "$T/key"
lb_exits 2 "lb: PORT=70000:" "port 70000" --dir="$T" 1 "$T/disk" 127.0.0.1 70000 "$T/key"
lb_exits 2 "lb: HOST=bad host: neither an address nor a host name" "a malformed host" \
    --dir="$T" 1 "$T/disk" "bad host" "$port" "$T/key"
lb_exits 2 "lb: HOST=[::1]: neither an address nor a host name (an IPv6 address goes without brackets)" \
    "an IPv6 address in brackets" --dir="$T" 1 "$T/disk" "[::1]" "$port" "$T/key"
lb_exits 2 "lb: $T/nokey: No such file or directory" "a missing key file" \
    --dir="$T" 1 "$T/disk" 127.0.0.1 "$port" "$T/nokey"
cp "$T/key" "$T/key644"; chmod 644 "$T/key644"
lb_exits 2 "lb: $T/key644: permissions 0644 are too open" "a key file others can read" \
    --dir="$T" 1 "$T/disk" 127.0.0.1 "$port" "$T/key644"
lb_exits 2 "lb: DEVICE $T/nodisk: No such file or directory" "a DEVICE that cannot be opened" \
    --dir="$T" 1 "$T/nodisk" 127.0.0.1 "$port" "$T/key"
lb_exits 2 "lb: --retry=0: seconds from 1 to 86400" "a bad option value" --retry=0 "${ARGS[@]}"
lb_exits 2 "lb: --log=journal: stderr or syslog" "a bad --log" --log=journal "${ARGS[@]}"
lb_exits 2 "lb: --dir=nodir-$$: No such file or directory" \
    "a relative --dir that does not exist" --dir=nodir-$$ "${ARGS[@]}"
lb_exits 2 "UNIT DEVICE HOST PORT KEYFILE expected (4 arguments given)" "a missing argument" 1 "$T/disk" 127.0.0.1 "$port"

# Channels lb must not use: never healed by waiting.
mkdir -p "$T/open" "$T/layout"
: >"$T/open/livewatch-1"; chmod 666 "$T/open/livewatch-1"
lb_exits 2 "writable by group or others; refusing it" "a channel others may write" \
    --dir="$T/open" "${ARGS[@]}"
cp "$T/livewatch-1" "$T/layout/livewatch-1"; chmod 600 "$T/layout/livewatch-1"
printf '\347\003\000\000' | dd of="$T/layout/livewatch-1" bs=1 seek=8 conv=notrunc status=none
lb_exits 2 "invalid header" "a channel of another layout" --dir="$T/layout" "${ARGS[@]}"
# Another consumer: it may go away, so exit 1.
start_lbd lbd "$T/srv/lbd.conf"
start_lb lb "$T" "$T/disk" "$port" "$T/key"
check "an lb follows the unit" wait_lb_converged "$IMG" 60
lb_exits 1 "another consumer is attached to this unit" "a second lb on the unit" \
    --dir="$T" --control="$T/second.ctl" "${ARGS[@]}"
stop_lb lb

# What may heal: lb stays and retries.
stays () {   # stays DESC LOGGED ARGS...: lb ARGS runs on, logging LOGGED
    local desc=$1 msg=$2 pid; shift 2
    : >"$T/stays.log"
    "$LB" --retry=1 "$@" 2>"$T/stays.log" &
    pid=$!
    if wait_for 10 grep -qF -- "$msg" "$T/stays.log" && sleep 2 && kill -0 "$pid"; then
        ok "$desc: lb retries"
    else
        not_ok "$desc: lb retries"; sed 's/^/#   /' "$T/stays.log"
    fi
    kill "$pid"; wait "$pid"
}
stays "a name the DNS does not know" "cannot connect to nosuchhost.invalid port $port" \
    --dir="$T" 1 "$T/disk" nosuchhost.invalid "$port" "$T/key"
kill "$(lbd_pid lbd)"; wait "$(lbd_pid lbd)"
stays "nothing listening" "cannot connect to 127.0.0.1 port $port: Connection refused" \
    --dir="$T" "${ARGS[@]}"
if getent services http >/dev/null; then
    stays "a service name" "cannot connect to 127.0.0.1 port http" \
        --dir="$T" 1 "$T/disk" 127.0.0.1 http "$T/key"
fi
done_testing
