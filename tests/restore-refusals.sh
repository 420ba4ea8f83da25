#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# What lbd's NBD export refuses.  Two clients with consistent images
# (c1, c2) and one whose image never was consistent (c3), one export
# with TLS-PSK:
#  - writes, zeroes and trims over NBD fail with EPERM; the image is
#    unchanged;
#  - a wrong key, another client's key, an unknown name: the TLS
#    handshake fails; c2's own key does not open c1's export, and c2
#    lists only its own;
#  - without TLS every option but STARTTLS is answered TLS_REQD (on the
#    wire), NBD_OPT_EXPORT_NAME ends the connection, nbdinfo fails;
#  - an image with no consistent state is refused with a reason;
#  - an oversized option ends only that connection;
#  - tls=off on an address that is not loopback is a config error
#    (exit status 2, as every error in the configuration).
. "${top_srcdir:-.}/tests/functions.sh"
requires nbdsh; requires nbdcopy; requires nbdinfo

xport=$(free_port); port=$(free_port)
SRV=$T/srv
mkdir -p "$SRV"
for c in c1 c2 c3; do
    make_key "$SRV/$c.key"
    truncate -s 8M "$SRV/$c.img"
    dd if=/dev/urandom of="$SRV/$c.img" bs=64k count=16 seek=$((RANDOM % 100)) conv=notrunc status=none
done
state () {   # state IMAGE CONSISTENT: a state file as lbd writes it
    printf 'epoch=00000000000000aa\nseq=7\nphase=%s\nconsistent=%s\nlast_consistent=%s\nsize=8388608\n' \
        "$([ "$2" = 1 ] && echo live || echo catching-up)" "$2" "$(date +%s)" >"$1.state"
}
state "$SRV/c1.img" 1; state "$SRV/c2.img" 1; state "$SRV/c3.img" 0
cat >"$SRV/lbd.conf" <<CONF
client name=c1 file=c1.img key=c1.key listen=127.0.0.1/$port
client name=c2 file=c2.img key=c2.key listen=127.0.0.1/$port
client name=c3 file=c3.img key=c3.key listen=127.0.0.1/$port
export listen=127.0.0.1/$xport
CONF

# --- configuration ---------------------------------------------------------
bad_conf () {   # bad_conf LISTEN: tls=off on LISTEN is refused by lbd -n
    printf 'client file=a.img key=c1.key listen=127.0.0.1/%s\nexport listen=%s tls=off\n' \
        "$port" "$1" >"$SRV/bad.conf"
    out=$("$LBD" -n "$SRV/bad.conf" 2>&1); rc=$?
    [ $rc = 2 ] && [ "$out" = "lbd: $SRV/bad.conf:2: tls=off: allowed only on a loopback address (127.0.0.0/8 or ::1), not listen=$1" ] ||
        { diag "exit $rc: $out"; return 1; }
}
check "lbd -n: tls=off on 10.0.0.1 is a config error" bad_conf 10.0.0.1/$xport
check "lbd -n: tls=off on 0.0.0.0 is a config error" bad_conf 0.0.0.0/$xport
check "lbd -n: tls=off on * is a config error" bad_conf "*/$xport"
printf 'client file=a.img key=c1.key listen=127.0.0.1/%s\nexport listen=::1/%s tls=off\n' \
    "$port" "$xport" >"$SRV/ok.conf"
check "lbd -n: tls=off on ::1 is accepted" \
    test "$("$LBD" -n "$SRV/ok.conf" 2>&1)" = "configuration OK"
out=$("$LBD" --psk-line "$SRV/lbd.conf" nosuch 2>&1); rc=$?
check "lbd --psk-line refuses an unknown name" \
    test "$rc" = 2 -a "$out" = "lbd: $SRV/lbd.conf: no client named 'nosuch'"

start_lbd lbd "$SRV/lbd.conf"
for c in c1 c2 c3; do "$LBD" --psk-line "$SRV/lbd.conf" $c >"$T/$c.psk"; done
md5_before=$(md5sum <"$SRV/c1.img")
url () { echo "nbds://$1@127.0.0.1:$xport/$2?tls-psk-file=$3"; }
opens () { nbdinfo "$(url "$@")" >"$T/out" 2>&1; }
refused_log () { wait_for 5 grep -qF -- "$1" "$T/lbd.log"; }
fails () { ! "$@"; }

check "c1's own key opens c1's export" opens c1 c1 "$T/c1.psk"
check "nbdcopy with it reads c1's image" \
    sh -c "nbdcopy '$(url c1 c1 "$T/c1.psk")' '$T/c1.read' && cmp -s '$T/c1.read' '$SRV/c1.img'"

# --- writes ---------------------------------------------------------------
nbdsh -c "
import errno
h.set_uri_allow_local_file(True)
h.connect_uri('$(url c1 c1 "$T/c1.psk")')
assert h.is_read_only()
h.set_strict_mode(0)     # send them anyway: the server must refuse
for name, f in [('write', lambda: h.pwrite(b'x' * 4096, 65536)),
                ('zero', lambda: h.zero(65536, 0)),
                ('trim', lambda: h.trim(65536, 0))]:
    try:
        f()
        print(name, 'accepted')
    except nbd.Error as e:
        print(name, 'EPERM' if e.errnum == errno.EPERM else e)
" >"$T/writes" 2>&1
check "a write over NBD is refused with EPERM" grep -qx "write EPERM" "$T/writes"
check "write zeroes is refused with EPERM" grep -qx "zero EPERM" "$T/writes"
check "trim is refused with EPERM" grep -qx "trim EPERM" "$T/writes"
sed 's/^/# /' "$T/writes"
check "the image is unchanged" test "$(md5sum <"$SRV/c1.img")" = "$md5_before"
check "lbd logged the refused write" refused_log "write refused: the export is read-only"

# --- keys -------------------------------------------------------------------
echo "c1:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/wrong.psk"
check "a wrong key cannot open c1's export" fails opens c1 c1 "$T/wrong.psk"
check "lbd logged the failed handshake" refused_log "TLS handshake failed (identity 'c1')"
echo "c1:$(cut -d: -f2 "$T/c2.psk")" >"$T/c2as1.psk"
check "c2's key under c1's name cannot open c1's export" \
    fails opens c1 c1 "$T/c2as1.psk"
check "c2's own identity and key cannot open c1's export" \
    fails opens c2 c1 "$T/c2.psk"
check "lbd logged c2 asking for an export it may not see" \
    refused_log "asked for an export it may not see: 'c1'"
check "c2's key opens c2's export" opens c2 c2 "$T/c2.psk"
lst=$(nbdinfo --list "$(url c2 "" "$T/c2.psk")" 2>&1 | sed -n 's/^export="\(.*\)":$/\1/p' | tr '\n' ' ')
check "c2 lists only its own export ($lst)" test "$lst" = "c2 "
echo "zz:$(cut -d: -f2 "$T/c1.psk")" >"$T/zz.psk"
check "an unknown name with a real key cannot open anything" \
    fails opens zz c1 "$T/zz.psk"
check "lbd logged the unknown name" refused_log "(identity 'zz'): unknown client name"
st=$("$LBD" --status --control="$T/lbd.ctl" "$SRV/lbd.conf")
check "lbd --status counts c1's refused export connections" \
    grep -q "export connections: 0 open, [0-9]* served, [1-9][0-9]* refused" <<<"$(sed -n '/^client c1:/,/^client c2:/p' <<<"$st")"

# --- no TLS -------------------------------------------------------------------
check "nbdinfo without TLS cannot open c1's export" \
    sh -c "! nbdinfo 'nbd://127.0.0.1:$xport/c1' >'$T/out' 2>&1"
check "nbdinfo --list without TLS fails" \
    sh -c "! nbdinfo --list 'nbd://127.0.0.1:$xport/' >'$T/out' 2>&1"
check "lbd logged it" refused_log "asked without TLS, which this address requires"
# The wire: fixed newstyle; LIST, INFO and GO before TLS get TLS_REQD;
# EXPORT_NAME closes the connection without a word.
cat >"$T/raw.py" <<'PY'
import socket, struct, sys
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
def recv(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b
magic, opt, flags = struct.unpack(">QQH", recv(18))
assert magic == 0x4e42444d41474943 and opt == 0x49484156454f5054 and flags & 1
s.sendall(struct.pack(">I", 3))
IHAVEOPT = 0x49484156454f5054
if mode == "options":
    name = b"c1"
    for o, data in [(3, b""), (6, struct.pack(">I", 2) + name + b"\0\0"),
                    (7, struct.pack(">I", 2) + name + b"\0\0"), (8, b""),
                    (10, struct.pack(">I", 2) + name + struct.pack(">I", 0))]:
        s.sendall(struct.pack(">QII", IHAVEOPT, o, len(data)) + data)
        m, ro, rt, rl = struct.unpack(">QIII", recv(20))
        recv(rl)
        assert m == 0x3e889045565a9 and ro == o, (hex(m), ro)
        print(o, hex(rt))
elif mode == "export-name":
    s.sendall(struct.pack(">QII", IHAVEOPT, 1, 2) + b"c1")
    try:
        print("got", len(recv(1)), "byte(s)")
    except (EOFError, ConnectionResetError):
        print("closed")
elif mode == "huge":
    s.sendall(struct.pack(">QII", IHAVEOPT, 3, 1 << 30))
    try:
        print("got", len(recv(1)), "byte(s)")
    except (EOFError, ConnectionResetError):
        print("closed")
PY
raw () { /usr/bin/python3 "$T/raw.py" "$xport" "$1" 2>&1; }
out=$(raw options | tr '\n' ' ')
check "before TLS: LIST, INFO, GO, STRUCTURED_REPLY, SET_META_CONTEXT get TLS_REQD" \
    test "$out" = "3 0x80000005 6 0x80000005 7 0x80000005 8 0x80000005 10 0x80000005 "
[ "$out" = "3 0x80000005 6 0x80000005 7 0x80000005 8 0x80000005 10 0x80000005 " ] || diag "got: $out"
check "before TLS: EXPORT_NAME closes the connection" test "$(raw export-name)" = closed
check "an oversized option closes the connection" test "$(raw huge)" = closed

# --- no consistent state --------------------------------------------------------
nbdcopy "$(url c3 c3 "$T/c3.psk")" "$T/c3.read" >"$T/c3.out" 2>&1; rc=$?
check "an image that never was consistent is refused" test "$rc" != 0
check "... by policy" grep -q "server policy prevents NBD_OPT_GO" "$T/c3.out"
check "lbd logged why" refused_log "export c3 to 127.0.0.1"
grep "export c3" "$T/lbd.log" | head -1 | cut -d' ' -f3- | sed 's/^/# /'
st=$("$LBD" --status --control="$T/lbd.ctl" "$SRV/lbd.conf")
check "lbd --status: c3's export serves nothing" \
    grep -q "export: serves nothing" <<<"$(sed -n '/^client c3:/,$p' <<<"$st")"

check "lbd still serves after all that" opens c1 c1 "$T/c1.psk"
check "lbd is alive" kill -0 "$(lbd_pid lbd)"
check "no overlay is left" sh -c "! ls '$SRV'/*.snap-* >/dev/null 2>&1"

done_testing
