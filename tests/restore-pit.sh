#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Restores read one moment.  Three clean ext4 file systems A, B and C
# are written in turn through the filter and replicated by lb to lbd,
# which exports the image over NBD with TLS-PSK.
#  - Live: a connection opened on A goes on reading A, byte for byte
#    (and its block status agrees with its data), while B is written and
#    replicated; a new connection reads B.
#  - Catch-up: with lb stopped, C is written in a burst larger than the
#    filter's queue (the filter degrades); lb restarts through a slow,
#    then paused link, so the catch-up stops halfway with the image mixed.
#    A new connection then reads B exactly (the copy taken while the
#    image was consistent), and e2fsck -fn passes on what it serves;
#    lbd --status says it serves the last consistent state.  Once the
#    link runs again the image converges to C and a new connection reads
#    C.
#  - Replay: the link breaks while lbd has applied writes it has not yet
#    made durable; lb reconnects and sends them again, which briefly puts
#    older versions of blocks beside newer ones.  A connection opened
#    during that replay reads the image as it was before it.
#  Snapshots and their overlays go when their readers leave.
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdkit; requires nbdsh; requires nbdcopy; requires mkfs.ext4
requires e2fsck
# The reader below is fed through a FIFO: if it dies, fail, not SIGPIPE.
trap "" PIPE

port=$(free_port); xport=$(free_port); pport=$(free_port)
SRV=$T/srv
mkdir -p "$SRV"
make_key "$T/key"; cp "$T/key" "$SRV/key"
cat >"$SRV/lbd.conf" <<CONF
client name=c1 file=c1.img key=key listen=127.0.0.1/$port
export listen=127.0.0.1/$xport tls=psk
CONF
IMG=$SRV/c1.img
"$LBD" --psk-line "$SRV/lbd.conf" c1 >"$T/psk" || bail "lbd --psk-line failed"
U="nbds://c1@127.0.0.1:$xport/c1?tls-psk-file=$T/psk"

# fs NAME MB-OF-RANDOM-FILES: a clean 64M ext4 image $T/NAME.fs.
fs () {
    local d=$T/$1.tree i
    mkdir -p "$d"
    cp -a /usr/share/man/man5 "$d/man-$1"
    for i in $(seq 1 "$2"); do
        head -c 1M /dev/urandom >"$d/$1-$i.bin"
    done
    echo "$1" >"$d/NAME"
    mkfs.ext4 -q -F -d "$d" "$T/$1.fs" 64M >/dev/null 2>&1
}
fs A 2; fs B 3; fs C 12
for f in A B C; do
    e2fsck -fn "$T/$f.fs" >/dev/null 2>&1 || bail "mkfs.ext4 -d made an unclean $f"
done

# A slow, pausable link between lb and lbd: bytes from lb go at most at
# the rate in $T/rate (bytes/s, 0: no limit) and not at all while
# $T/pause exists.
cat >"$T/link.py" <<'PY'
import os, socket, sys, threading, time
lport, dport, rate_f, pause_f = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def rate():
    try:
        return int(open(rate_f).read() or 0)
    except Exception:
        return 0
def pump(a, b, slow):
    try:
        while True:
            while slow and os.path.exists(pause_f):
                time.sleep(0.02)
            data = a.recv(8192)
            if not data:
                break
            b.sendall(data)
            r = rate() if slow else 0
            if r > 0:
                time.sleep(len(data) / r)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", lport))
srv.listen(8)
while True:
    c, _ = srv.accept()
    try:
        d = socket.create_connection(("127.0.0.1", dport))
    except OSError:
        c.close()
        continue
    threading.Thread(target=pump, args=(c, d, True), daemon=True).start()
    threading.Thread(target=pump, args=(d, c, False), daemon=True).start()
PY
start_link () {
    /usr/bin/python3 "$T/link.py" "$pport" "$port" "$T/rate" "$T/pause" 2>>"$T/link.log" &
    echo $! >"$T/link.pid"
    wait_for 10 /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $pport)).close()"
}
cleanup 'kill $(cat "$T/link.pid")'
echo 0 >"$T/rate"
start_link

# A reader that holds one export connection open and, for each line
# "hash FILE" on its input, writes to FILE the SHA-256 of everything the
# export reads, and "zeroes-ok" if every extent that block status calls
# zero reads as zeroes.
cat >"$T/hold.py" <<'PY'
import hashlib, os, sys
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.set_uri_allow_local_file(True)
h.connect_uri(os.environ["U"])
size = h.get_size()
def digest():
    m = hashlib.sha256()
    ok = True
    off = 0
    while off < size:
        n = min(4 << 20, size - off)
        buf = h.pread(n, off)
        m.update(buf)
        ext = []
        h.block_status(n, off, lambda ctx, o, e, err: ext.extend(e) or 0)
        pos = 0
        for i in range(0, len(ext), 2):
            ln, fl = ext[i], ext[i + 1]
            end = min(pos + ln, n)
            if fl & 2 and buf[pos:end].count(0) != end - pos:
                ok = False
            pos = end
            if pos >= n:
                break
        off += n
    return m.hexdigest() + (" zeroes-ok" if ok else " zeroes-BAD")
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "hash":
        d = digest()
        with open(arg + ".tmp", "w") as f:
            f.write(d + "\n")
        os.rename(arg + ".tmp", arg)
    elif cmd == "quit":
        break
PY
sha () { sha256sum <"$1" | cut -c1-64; }
# export_reads FILE: a new connection copies the export into FILE.
export_reads () { rm -f "$1"; nbdcopy "$U" "$1" 2>>"$T/nbdcopy.log"; }

cp "$T/A.fs" "$T/disk"
start_nbdkit nbd "$T/disk" livewatch-queue=1M
start_lbd lbd "$SRV/lbd.conf"
start_lb lb "$T" "$T/disk" "$pport" "$T/key" --name=c1
check "first contact converges (A)" wait_lb_converged "$IMG" 60
check "the image is A" same "$T/A.fs" "$IMG"

# --- live: an open connection keeps reading the moment it opened ------
mkfifo "$T/hold.fifo"
U=$U nbdsh -c "$(cat "$T/hold.py")" <"$T/hold.fifo" >>"$T/hold.log" 2>&1 &
HOLD=$!
cleanup "kill $HOLD"
exec 3>"$T/hold.fifo"
cleanup "exec 3>&-"
held () { rm -f "$T/$1"; echo "hash $T/$1" >&3; wait_for 60 test -s "$T/$1"; }
check "a held connection reads the export" held h1
check "it reads A, and zero extents read as zeroes" \
    test "$(cat "$T/h1")" = "$(sha "$T/A.fs") zeroes-ok"

nbdcopy "$T/B.fs" "$(uri nbd)" || bail "cannot write B through nbdkit"
check "B replicates" wait_lb_converged "$IMG" 60
check "the image is B" same "$T/B.fs" "$IMG"
check "the held connection still reads A" held h2
check "... byte for byte" test "$(cat "$T/h2")" = "$(cat "$T/h1")"
check "a new connection reads B" export_reads "$T/b.read"
check "... byte for byte" same "$T/B.fs" "$T/b.read"
st=$("$LBD" --status --control="$T/lbd.ctl" "$SRV/lbd.conf")
check "lbd --status: the export serves the live image" \
    grep -q "export: serves the live image" <<<"$st"
check "lbd --status: one snapshot with one reader" \
    test "$(grep -c "^  snapshot .* 1 reader," <<<"$st")" = 1

# --- catch-up: a new connection reads the last consistent state ---------
cp --sparse=always "$IMG" "$T/consistent.copy"
check "copy taken while the image is consistent" \
    test "$(state_of "$IMG" consistent)" = 1 -a "$(state_of "$IMG" phase)" = live
kill "$(lb_pid lb)"; wait "$(lb_pid lb)" 2>/dev/null
nbdcopy "$T/C.fs" "$(uri nbd)" || bail "cannot write C through nbdkit"
check "the burst degraded the filter" test "$(stat_of mode)" = degraded
echo 1000000 >"$T/rate"
start_lb lb "$T" "$T/disk" "$pport" "$T/key" --name=c1
# halfway: lbd says inconsistent and has applied some of the blocks.
halfway () {
    [ "$(state_of "$IMG" consistent)" = 0 ] && ! cmp -s "$IMG" "$T/consistent.copy"
}
if wait_for 60 halfway; then
    touch "$T/pause"
    ok "the catch-up is halfway (image inconsistent and changed); link paused"
else
    not_ok "the catch-up is halfway (image inconsistent and changed); link paused"
    diag "state: $(tr '\n' ' ' <"$IMG.state")"
fi
sleep 0.5
check "the image itself is mixed: neither B nor C" \
    sh -c "! cmp -s '$IMG' '$T/B.fs' && ! cmp -s '$IMG' '$T/C.fs'"
diag "$(grep -o 'lb: \(catching-up\|scanning\)$' "$T/lb.log" | tail -1)"
check "a new connection during the catch-up" export_reads "$T/pit.read"
check "... reads the last consistent state (the copy taken before)" \
    same "$T/consistent.copy" "$T/pit.read"
fsck_n () { e2fsck -fn "$1" >"$1.fsck" 2>&1 || { tail -5 "$1.fsck" | sed 's/^/#   /'; return 1; }; }
check "e2fsck -fn passes on what the export serves" fsck_n "$T/pit.read"
st=$("$LBD" --status --control="$T/lbd.ctl" "$SRV/lbd.conf")
check "lbd --status: serves its last consistent state" \
    grep -q "export: serves its last consistent state, of " <<<"$st"
check "lbd --status: the snapshot that keeps it" \
    grep -q "^  snapshot [0-9]* (last consistent state)" <<<"$st"
grep "^  \(export\|snapshot\)" <<<"$st" | sed 's/^/#/'
check "the held connection still reads A" held h3
check "... byte for byte" test "$(cat "$T/h3")" = "$(cat "$T/h1")"

rm -f "$T/pause"; echo 0 >"$T/rate"
check "the catch-up finishes and the image converges" wait_lb_converged "$IMG" 90
check "the image is C" same "$T/C.fs" "$IMG"
check "a new connection reads C" export_reads "$T/c.read"
check "... byte for byte" same "$T/C.fs" "$T/c.read"

# --- replay: records applied but not durable come again ---------------------
cp --sparse=always "$IMG" "$T/before-burst"
# lbd has applied a record beyond the seq its state file makes durable.
applied () {
    "$LBD" --status --json --control="$T/lbd.ctl" "$SRV/lbd.conf" |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["clients"][0]["applied_seq"])'
}
# Four records ahead: one of the three blocks was written twice since.
ahead () { [ "$(applied)" -ge $(( $(state_of "$IMG" seq) + 4 )) ]; }
# A burst over the slow link, paused while lbd is ahead of its state
# file, then the link cut.  lbd commits at the cut whatever SYNC it has
# (pipelined syncs: one may already be in hand), so the cut is what
# decides: when lbd is still ahead after it, the records come again.
caught=no
for try in 1 2 3 4 5; do
    echo 40000 >"$T/rate"
    # Three blocks written four times each, no flush: lb syncs when
    # idle, after the last one; the slow link delivers them one by one.
    nbdsh -u "$(uri nbd)" -c '
import os
for i in range(12): h.pwrite(os.urandom(16384), (i % 3) * 4 * 1048576 + 8192)
' || bail "cannot write through nbdkit"
    if wait_for 10 ahead; then
        touch "$T/pause"; sleep 0.3
    fi
    # The link breaks: what lb had sent dies with it, and lb (whose
    # records stay queued until lbd has made them durable) reconnects.
    kill "$(cat "$T/link.pid")"; wait "$(cat "$T/link.pid")" 2>/dev/null
    sleep 0.5
    ahead && { caught=yes; break; }
    diag "try $try: lbd was not ahead of its state file at the cut; again"
    rm -f "$T/pause"; echo 0 >"$T/rate"
    start_link
    wait_lb_converged "$IMG" 60 || bail "no convergence between tries"
    cp --sparse=always "$IMG" "$T/before-burst"
done
if [ $caught = yes ]; then
    ok "lbd applied writes it has not made durable (seq $(applied) > $(state_of "$IMG" seq)); link cut"
else
    not_ok "lbd applied writes it has not made durable; link cut"
fi
cp --sparse=always "$IMG" "$T/before-replay"
check "the image's state file still says consistent" \
    test "$(state_of "$IMG" consistent)" = 1
rm -f "$T/pause"; echo 20000 >"$T/rate"
start_link
if wait_for 30 grep -q "come again (the image already holds them)" "$T/lbd.log"; then
    touch "$T/pause"
    ok "lb sends them again; lbd notices the replay; link paused"
else
    not_ok "lb sends them again; lbd notices the replay; link paused"
fi
sleep 0.5
check "the image itself is mixed: an older version of a block is back" \
    sh -c "! cmp -s '$IMG' '$T/before-replay'"
check "a new connection during the replay" export_reads "$T/replay.read"
check "... reads the image as it was before the replay" \
    same "$T/before-replay" "$T/replay.read"
check "... which lbd serves as the last consistent state" \
    sh -c "tail -3 '$T/lbd.log' | grep -q 'serving its last consistent state'"
rm -f "$T/pause"; echo 0 >"$T/rate"
check "the replay ends; lb converges" wait_lb_converged "$IMG" 60
check "the image equals the partition" same "$T/disk" "$IMG"
check "lbd logged the end of it" \
    grep -q "the records that came again are through" "$T/lbd.log"

check "the held connection still reads A" held h4
check "... byte for byte" test "$(cat "$T/h4")" = "$(cat "$T/h1")"
echo quit >&3
wait "$HOLD"
no_snapshots () {
    "$LBD" --status --control="$T/lbd.ctl" "$SRV/lbd.conf" >"$T/st" &&
        grep -q "export: serves the live image" "$T/st" &&
        ! grep -q "^  snapshot" "$T/st" && ! ls "$IMG".snap-* >/dev/null 2>&1
}
check "every snapshot and overlay is gone once its readers left" \
    wait_for 10 no_snapshots
check "lbd logged keeping and dropping the last consistent state" \
    grep -q "snapshot [0-9]* keeps its last consistent state" "$T/lbd.log"

done_testing
