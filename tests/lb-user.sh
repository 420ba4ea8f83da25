#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Privileges and trust: nbdkit, lbd and lb all running as an unprivileged
# user (nbdkit -u, lbd --user, lb --user) replicate as usual; the channel
# file belongs to nbdkit's user; lb refuses a channel it cannot trust
# (writable by others, owned by another user) and a key file others can
# read.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires_root
id nobody >/dev/null 2>&1 || skip "no user 'nobody'"
chmod 755 "$T"

port=$(free_port)
mkdir -p "$T/srv" "$T/chan"
make_key "$T/key"; cp "$T/key" "$T/srv/key"
chown nobody "$T/key" "$T/srv" "$T/chan"; chown nobody "$T/srv/key"
cat >"$T/srv/lbd.conf" <<CONF
client file=disk.img key=key listen=127.0.0.1/$port type=simple
CONF
truncate -s 32M "$T/disk"; chown nobody "$T/disk"

nbdkit -u nobody -U "$T/nbd.sock" -P "$T/chan/nbd.pid" --filter="$FILTER" \
    file "$T/disk" livewatch-unit=1 livewatch-dir="$T/chan" 2>>"$T/nbd.log"
cleanup "kill \$(cat $T/chan/nbd.pid)"
wait_for 10 test -e "$T/chan/livewatch-1"
check "the channel belongs to nbdkit's user (nobody), mode 0600" \
    test "$(stat -c %U:%a "$T/chan/livewatch-1")" = nobody:600

start_lbd lbd "$T/srv/lbd.conf" --user=nobody
"$LB" --user=nobody --dir="$T/chan" --retry=1 1 "$T/disk" 127.0.0.1 "$port" "$T/key" 2>>"$T/lb.log" &
lbpid=$!
cleanup "kill -9 $lbpid"
nbdsh -u "nbd+unix:///?socket=$T/nbd.sock" -c 'import os; h.pwrite(os.urandom(1 << 20), 4096); h.flush()'
IMG=$T/srv/disk.img
conv () { "$MIRROR" --stat --dir="$T/chan" 1 | grep -q converged=1 && [ "$(state_of "$IMG" phase)" = live ]; }
check "replication converges with every process unprivileged" wait_for 60 conv
check "image equals the partition" same "$T/disk" "$IMG"
check "lb runs as nobody" test "$(ps -o user= -p $lbpid)" = nobody
check "lbd runs as nobody" test "$(ps -o user= -p "$(lbd_pid lbd)")" = nobody
check "lbd's image belongs to nobody" test "$(stat -c %U "$IMG")" = nobody
kill $lbpid; wait $lbpid 2>/dev/null

# lb's trust checks on the channel.
chmod 666 "$T/chan/livewatch-1"
out=$(timeout 5 "$LB" --dir="$T/chan" 1 "$T/disk" 127.0.0.1 "$port" "$T/key" 2>&1)
check "lb refuses a channel others can write" grep -q "writable by group or others; refusing it" <<<"$out"
chmod 600 "$T/chan/livewatch-1"; chown daemon "$T/chan/livewatch-1"
out=$(timeout 5 "$LB" --user=nobody --dir="$T/chan" 1 "$T/disk" 127.0.0.1 "$port" "$T/key" 2>&1)
check "lb refuses a channel owned by another user" grep -q "livewatch-1: \(owned by another user\|Permission denied\)" <<<"$out"
chown nobody "$T/chan/livewatch-1"

# Key files.
cp "$T/key" "$T/openkey"; chmod 644 "$T/openkey"
out=$(timeout 5 "$LB" --dir="$T/chan" 1 "$T/disk" 127.0.0.1 "$port" "$T/openkey" 2>&1)
check "lb refuses a key file others can read" grep -q "openkey.*too open" <<<"$out"
: >"$T/emptykey"; chmod 600 "$T/emptykey"
out=$(timeout 5 "$LB" --dir="$T/chan" 1 "$T/disk" 127.0.0.1 "$port" "$T/emptykey" 2>&1)
check "lb refuses an empty key file" grep -q "emptykey.*empty" <<<"$out"
out=$("$LB" --user=nosuchuser --dir="$T/chan" 1 "$T/disk" 127.0.0.1 "$port" "$T/key" 2>&1)
check "lb --user with an unknown user is an error naming it" grep -q "user=nosuchuser: no such user" <<<"$out"

done_testing
