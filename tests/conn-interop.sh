#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The transport against standard TLS tools: gnutls-cli must complete the
# TLS 1.3 PSK handshake with our server (tests/conn-peer) given the right
# name and key, and fail with a wrong key, an unknown name, a client line
# in plain mode, or an offer of psk_ke alone (no forward secrecy); our
# client must complete the handshake with gnutls-serv.  This is what
# shows the transport is standard TLS-PSK, not home-made.
. "${top_srcdir:-.}/tests/functions.sh"
requires gnutls-cli
PEER=$top_builddir/tests/conn-peer
PRIO=NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK
NAME=client1/sdb1
# What lb and lbd use: the SHA-256 of the key file, here in hex.
head -c 200 /dev/urandom >"$T/key"
KEY=$(sha256sum <"$T/key" | cut -c1-64)
BAD=$(printf 'other key' | sha256sum | cut -c1-64)

# start_peer [--plain-line]: our server, one connection, for $NAME/$KEY;
# sets PEER_PID and PORT, its log in $T/peer.log.
start_peer () {
    rm -f "$T/port" "$T/peer.log"
    "$PEER" "$@" "$T/port" "$NAME" "$KEY" 2>"$T/peer.log" &
    PEER_PID=$!
    cleanup "kill $PEER_PID"
    wait_for 20 test -s "$T/port" || bail "conn-peer did not start"
    PORT=$(cat "$T/port")
}

# cli NAME KEYHEX PRIORITY: gnutls-cli to $PORT; sends one line, waits
# for its echo (up to 10 s), then ends its input.  Output in $T/cli.out.
cli () {
    local fifo=$T/cli.in pid
    rm -f "$fifo"; mkfifo "$fifo"
    timeout 30 gnutls-cli --pskusername="$1" --pskkey="$2" --priority="$3" \
        -p "$PORT" 127.0.0.1 <"$fifo" >"$T/cli.out" 2>&1 &
    pid=$!
    exec 3>"$fifo"
    echo "hello through TLS-PSK" >&3
    wait_for 10 grep -q "^hello through TLS-PSK" "$T/cli.out"
    exec 3>&-
    wait $pid
}

# --- gnutls-cli against our server ---------------------------------------
start_peer
cli "$NAME" "$KEY" "$PRIO"; rc=$?
wait $PEER_PID; prc=$?
check "gnutls-cli completes the handshake" grep -q "Handshake was completed" "$T/cli.out"
check "gnutls-cli: PSK authentication as the client's name" \
    grep -q "PSK authentication. Connected as '$NAME'" "$T/cli.out"
check "the line comes back through the server's echo" \
    grep -q "^hello through TLS-PSK" "$T/cli.out"
check "gnutls-cli exits 0" test $rc = 0
check "our server: handshake ok with (EC)DHE-PSK" \
    grep -Eq "handshake ok: identity=$NAME TLS1.3 (ECDHE|DHE)-PSK " "$T/peer.log"
check "our server exits 0" test $prc = 0
grep -h "Description\|handshake" "$T/cli.out" "$T/peer.log" | sed 's/^/# /'

start_peer
cli "$NAME" "$BAD" "$PRIO"; rc=$?
wait $PEER_PID; prc=$?
check "wrong key: gnutls-cli fails" test $rc != 0
check "wrong key: no echo" sh -c "! grep -q '^hello through' '$T/cli.out'"
check "wrong key: gnutls-cli gets decrypt_error" grep -q "Decrypt error" "$T/cli.out"
check "wrong key: our server says so" grep -q "wrong key" "$T/peer.log"
check "wrong key: our server exits 1" test $prc = 1

start_peer
cli "someone-else" "$KEY" "$PRIO"; rc=$?
wait $PEER_PID
check "unknown name: gnutls-cli fails" test $rc != 0
check "unknown name: unknown_psk_identity alert (115)" grep -q "alert \[115\]" "$T/cli.out"
check "unknown name: our server says so" grep -q "unknown client name 'someone-else'" "$T/peer.log"

start_peer
cli "$NAME" "$KEY" NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+PSK; rc=$?
wait $PEER_PID
check "psk_ke only (no ephemeral key exchange): gnutls-cli fails" test $rc != 0
check "psk_ke only: our server refuses it" grep -q "no PSK with (EC)DHE" "$T/peer.log"

start_peer --plain-line
cli "$NAME" "$KEY" "$PRIO"; rc=$?
wait $PEER_PID
check "TLS against a plain client line: gnutls-cli fails" test $rc != 0
check "TLS against a plain client line: access_denied alert (49)" grep -q "alert \[49\]" "$T/cli.out"
check "TLS against a plain client line: our server says mode mismatch" \
    grep -q "mode mismatch" "$T/peer.log"

# --- our client against gnutls-serv ------------------------------------------
if command -v gnutls-serv >/dev/null && command -v python3 >/dev/null; then
    echo "$NAME:$KEY" >"$T/psk.passwd"
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    gnutls-serv --echo --pskpasswd="$T/psk.passwd" --priority="$PRIO" \
        -p "$PORT" >"$T/serv.log" 2>&1 &
    cleanup "kill $!"
    # Retry until gnutls-serv listens.
    wait_for 20 sh -c "'$PEER' --connect=$PORT '$NAME' '$KEY' >'$T/client.out' 2>'$T/client.log'"
    check "our client completes the handshake with gnutls-serv" \
        grep -Eq "handshake ok: TLS1.3 (ECDHE|DHE)-PSK " "$T/client.log"
    check "and its line comes back" grep -q "^hello from lb_conn" "$T/client.out"
    "$PEER" --connect="$PORT" "$NAME" "$BAD" >"$T/client.out" 2>"$T/client.log"
    check "our client with a wrong key fails against gnutls-serv" test $? = 1
    sed 's/^/# /' "$T/client.log"
else
    diag "gnutls-serv or python3 missing: our client against gnutls-serv not tested"
fi

done_testing
