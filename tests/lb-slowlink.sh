#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lb over a slow link: lbd runs in a network namespace of its own, joined
# to the root namespace by a veth pair in a private /30 made up here
# (nothing leaves the machine), the lb -> lbd direction shaped to
# 4 Mbit/s with tbf.  The filter has a small queue (1 MiB), so a burst of
# writes degrades it instead of waiting for the link: the writer keeps
# (near) local speed, then lb catches up over the link ("catching-up",
# then "live") and the image equals the partition.
. "${top_srcdir:-.}/tests/functions.sh"
requires_root; requires nbdkit; requires fio; requires ip; requires tc

RATE=4mbit                      # 0.5 MB/s: catch-up of 8 MiB takes ~20 s
NS=lbt$$ VA=lbt$$a VB=lbt$$b    # unique per test process

# A /30 in 10.231.0.0/16 that no interface here uses yet.
ADDR_A= ADDR_B=
for try in $(seq 50); do
    a=$((RANDOM % 256)) b=$((RANDOM % 64 * 4))
    ip -o -4 addr show | grep -Eq " 10\.231\.$a\.($b|$((b+1))|$((b+2))|$((b+3)))/" && continue
    ip -4 route show | grep -q "^10\.231\.$a\.$b/30 " && continue
    ADDR_A=10.231.$a.$((b+1)) ADDR_B=10.231.$a.$((b+2))
    break
done
[ -n "$ADDR_A" ] || bail "no free /30 in 10.231.0.0/16"

# Undone at exit in reverse order: whatever runs in the namespace is
# killed, the shaping removed, the veth pair and the namespace deleted.
cleanup "ip netns del $NS"
cleanup "ip link del $VA"
ip netns add "$NS" || skip "cannot create a network namespace"
cleanup "ip netns pids $NS | xargs -r kill -9"
ip link add "$VA" type veth peer name "$VB" || skip "cannot create a veth pair"
ip link set "$VB" netns "$NS" || bail "veth into the namespace"
ip addr add "$ADDR_A/30" dev "$VA" && ip link set "$VA" up || bail "veth $VA"
ip netns exec "$NS" sh -c "ip addr add $ADDR_B/30 dev $VB && ip link set $VB up && ip link set lo up" \
    || bail "veth $VB"
cleanup "tc qdisc del dev $VA root"
tc qdisc add dev "$VA" root tbf rate $RATE burst 32kbit latency 400ms \
    || skip "tc tbf not available"
diag "link: $ADDR_A ($VA) -> $ADDR_B ($VB in netns $NS), $RATE"

# lbd inside the namespace: start_lbd runs $LBD, so point it at a wrapper
# (ip netns exec execs the command: the pid start_lbd records is lbd's).
cat >"$T/lbd-ns" <<EOF
#!/bin/sh
exec ip netns exec $NS $LBD "\$@"
EOF
chmod +x "$T/lbd-ns"
LBD=$T/lbd-ns

# start_lb_at NAME HOST PORT [lb options]: start_lb, to another host.
start_lb_at () {
    local name=$1 host=$2 port=$3; shift 3
    "$LB" --dir="$T" --retry=1 "$@" 1 "$T/disk" "$host" "$port" "$T/key" \
        2>>"$T/$name.log" &
    echo $! >"$T/$name.lbpid"
    cleanup "kill -9 $! 2>/dev/null"
}
# burst NAME: 48 MiB of random writes over the first 8 MiB of export NAME
# from two connections; prints the wall time in ms.
burst () {
    local t0 t1
    t0=$(date +%s%N)
    timeout 120 fio --name=burst --ioengine=nbd --uri="$(uri "$1")" \
        --rw=randwrite --bs=64k --size=8M --io_size=24M --numjobs=2 \
        --iodepth=8 --output="$T/fio-$1.log" >/dev/null 2>&1 \
        || diag "fio on $1 failed"
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}

one_client "$ADDR_B"

# The partition, watched, replicated over the slow link.
truncate -s 64M "$T/disk"
dd if=/dev/urandom of="$T/disk" bs=1M count=1 seek=32 conv=notrunc status=none
start_nbdkit nbd "$T/disk" livewatch-queue=1M
start_lbd lbd "$T/srv/lbd.conf"
start_lb_at lb "$ADDR_B" "$port"
check "first contact over the slow link converges" wait_lb_converged "$IMG" 60
check "image equals the partition" same "$T/disk" "$IMG"
check "lbd saw lb come from the other end of the veth" \
    grep -q "($ADDR_A:" "$T/lbd.log"

# The writer's local speed: the same burst through the same filter (small
# queue) on a second export whose channel has no consumer (degraded), just
# before and just after the burst on the watched one, so that both see
# the same load on this machine; the slower of the two counts.
truncate -s 64M "$T/base"
mkdir "$T/base.d"
start_nbdkit base "$T/base" livewatch-queue=1M livewatch-dir="$T/base.d"
wait_for 20 "$MIRROR" --stat --dir="$T/base.d" 1 || bail "second channel not ready"

lines0=$(wc -l <"$T/lb.log")
deg0=$(stat_of degrades)
tbase1=$(burst base)
tslow=$(burst nbd)
deg1=$(stat_of degrades)
tbase2=$(burst base)
tbase=$(( tbase1 > tbase2 ? tbase1 : tbase2 ))
diag "burst with lb on the $RATE link: $tslow ms; with no consumer: $tbase1 ms before, $tbase2 ms after"
check "the burst is not slowed by the link (< 3x the no-consumer burst)" \
    test "$tslow" -lt $((3 * tbase))
check "the burst degraded the filter (degrades $deg0 -> $deg1)" \
    test "$deg1" -ge $((deg0 + 1))

t0=$(date +%s)
check "after the burst the image converges over the slow link" \
    wait_lb_converged "$IMG" 150
diag "catch-up took $(( $(date +%s) - t0 )) s after the burst"
check "image equals the partition after the burst" same "$T/disk" "$IMG"
check "lb logged catching-up, then live" \
    awk -v n="$lines0" 'NR > n && /lb: catching-up$/ { c = 1 }
                        NR > n && c && /lb: live / { l = 1 }
                        END { exit !(c && l) }' "$T/lb.log"
check "image state: consistent" test "$(state_of "$IMG" consistent)" = 1

# --- a dead peer: the link goes silent while the session is idle -------------
# No FIN, no RST: only TCP keepalive (10 s idle, 4 probes 5 s apart) and
# TCP_USER_TIMEOUT tell either end.  Both must notice within about 30 s.
nl_lb=$(wc -l <"$T/lb.log"); nl_lbd=$(wc -l <"$T/lbd.log")
ip netns exec "$NS" ip link set "$VB" down
t0=$(date +%s)
lb_noticed () { tail -n +$((nl_lb + 1)) "$T/lb.log" | grep -q "connection to .* ended"; }
lbd_noticed () { tail -n +$((nl_lbd + 1)) "$T/lbd.log" | grep -q "connection lost"; }
check "lb notices the silent peer within 45 s" wait_for 45 lb_noticed
diag "lb noticed after $(( $(date +%s) - t0 )) s"
check "lbd notices the silent peer within 45 s" wait_for 45 lbd_noticed
diag "lbd noticed after $(( $(date +%s) - t0 )) s"
ip netns exec "$NS" ip link set "$VB" up
nbdsh -u "$(uri nbd)" -c 'import os; h.pwrite(os.urandom(65536), 1 << 20); h.flush()'
check "after the link comes back lb reconnects and converges" \
    wait_lb_converged "$IMG" 90
check "image equals the partition after the silent outage" same "$T/disk" "$IMG"

done_testing
