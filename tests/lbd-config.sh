#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# lbd -n on good and bad configurations: every error names FILE:LINE
# (the line of the word at fault, also inside a continued statement; the
# statement's first line for a missing key) and starts with the KEY=VALUE
# at fault; errors exit non-zero and print nothing on stdout; a good
# config prints exactly "configuration OK" and exits 0.  No port is bound
# and no image is created by -n.
. "${top_srcdir:-.}/tests/functions.sh"

C=$(cd "$T" && pwd -P)/conf         # the config folder, links resolved
mkdir -p "$C"
make_key "$C/k"
make_key "$C/k2"
P=15440

# lbd_n NAME [lbd options]: write stdin to $C/NAME.conf, run lbd -n on
# it; stdout in $OUT, stderr in $ERR, exit status in $RC.
lbd_n () {
    local name=$1; shift
    cat >"$C/$name.conf"
    OUT=$("$LBD" -n "$@" "$C/$name.conf" 2>"$T/err"); RC=$?
    ERR=$(cat "$T/err")
}
# bad NAME LINE MESSAGE [lbd options] <CONFIG: lbd -n refuses CONFIG
# with exactly "lbd: FILE:LINE: MESSAGE", status 2 (a configuration
# error), no stdout.
bad () {
    local name=$1 line=$2 msg=$3; shift 3
    lbd_n "$name" "$@"
    local want="lbd: $C/$name.conf:$line: $msg"
    if [ "$RC" = 2 ] && [ -z "$OUT" ] && [ "$ERR" = "$want" ]; then
        ok "$name: refused at line $line"
    else
        not_ok "$name: refused at line $line"
        diag "exit $RC, stdout: $OUT"
        diag "got:  $ERR"
        diag "want: $want"
    fi
}
# good NAME [lbd options] <CONFIG: lbd -n accepts CONFIG.
good () {
    local name=$1; shift
    lbd_n "$name" "$@"
    if [ "$RC" = 0 ] && [ "$OUT" = "configuration OK" ] && [ -z "$ERR" ]; then
        ok "$name: configuration OK"
    else
        not_ok "$name: configuration OK"
        diag "exit $RC, stdout: $OUT"; diag "stderr: $ERR"
    fi
}

# --- good ------------------------------------------------------------------
# Comments, blank lines, tabs, CRLF, continuations, a comment ending in a
# backslash (continues nothing), every key, IPv6 in both spellings.
printf '%s\r\n' "# lbd.conf" "" \
    "client file=a.img key=k listen=127.0.0.1/$P   # trailing comment" \
    >"$T/full"
cat >>"$T/full" <<CONF

   # indented comment \\
client	file=b.img	key=k	listen=127.0.0.1/$P	name=bee \\
    type=simple \\
    encrypt=yes
client file=c.img key=k2 \\
       listen=127.0.0.1/$((P + 1)) \\
       encrypt=no
client file=d.img key=k listen=[::1]/$P name=d
client file=e.img key=k listen=::1/$P name=e
client file=f.img key=k listen=127.0.0.1/$((P + 2)) name=bee
export listen=127.0.0.1/$((P + 3)) tls=off
export listen=::1/$((P + 4))
CONF
good full <"$T/full"
check "lbd -n created no image" test ! -e "$C/a.img"
good minimal <<CONF
client file=/$C/x.img key=k listen=10.0.0.17/$P
CONF
good wildcard <<CONF
client file=w1.img key=k listen=*/$P name=w1
client file=w2.img key=k listen=*/$P name=w2
CONF
good single-default-name <<CONF
client file=a.img key=k listen=127.0.0.1/$P
client file=b.img key=k listen=127.0.0.1/$((P + 1))
CONF

# --- grammar ---------------------------------------------------------------
bad unknown-keyword 3 "clinet: unknown keyword (expected client or export)" <<CONF
# comment

clinet file=a.img key=k listen=127.0.0.1/$P
CONF
bad unknown-key 2 "files=a.img: unknown key for client (expected file, key, listen, type, name, encrypt, max-rate, history or verify)" <<CONF
client file=a.img key=k listen=127.0.0.1/$P name=a
client files=a.img key=k listen=127.0.0.1/$P
CONF
bad export-key-on-client 1 "tls=off: unknown key for client (expected file, key, listen, type, name, encrypt, max-rate, history or verify)" <<CONF
client file=a.img key=k listen=127.0.0.1/$P tls=off
CONF
bad client-key-on-export 2 "file=a.img: unknown key for export (expected listen or tls)" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
export listen=127.0.0.1/$((P + 1)) file=a.img
CONF
bad case-sensitive 1 "File=a.img: unknown key for client (expected file, key, listen, type, name, encrypt, max-rate, history or verify)" <<CONF
client File=a.img key=k listen=127.0.0.1/$P
CONF
bad history-kind 2 "history=hourly:24,yearly:2: unknown kind 'yearly' (expected minutely, hourly, daily, weekly or monthly)" <<CONF
client file=a.img key=k listen=127.0.0.1/$P \\
    history=hourly:24,yearly:2
CONF
bad history-count 1 "history=daily:0: daily: the count must be a number from 1 to 100000" <<CONF
client file=a.img key=k listen=127.0.0.1/$P history=daily:0
CONF
bad no-value 1 "name: no value (write name=VALUE)" <<CONF
client file=a.img key=k listen=127.0.0.1/$P name
CONF
bad empty-value 1 "key=: empty value" <<CONF
client file=a.img key= listen=127.0.0.1/$P
CONF
bad duplicate-key 3 "file=b.img: duplicate key (file= is already given on line 1)" <<CONF
client file=a.img key=k \\
   listen=127.0.0.1/$P \\
   file=b.img
CONF
bad missing-file 2 "client without file= (required)" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
client key=k \\
   listen=127.0.0.1/$P name=b
CONF
bad missing-key 1 "client without key= (required)" <<CONF
client file=a.img listen=127.0.0.1/$P
CONF
bad missing-listen 2 "client without listen= (required)" <<CONF

client file=a.img \\
   key=k
CONF
bad export-missing-listen 2 "export without listen= (required)" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
export tls=psk
CONF
bad bad-type 2 "type=complex: unknown type (the only type is simple)" <<CONF
client file=a.img key=k listen=127.0.0.1/$P \\
   type=complex
CONF
bad bad-encrypt 1 "encrypt=maybe: expected yes or no" <<CONF
client file=a.img key=k listen=127.0.0.1/$P encrypt=maybe
CONF
bad bad-encrypt-case 1 "encrypt=YES: expected yes or no" <<CONF
client file=a.img key=k listen=127.0.0.1/$P encrypt=YES
CONF
bad bad-tls 2 "tls=on: expected psk or off" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
export listen=127.0.0.1/$((P + 1)) tls=on
CONF
long=$(printf 'n%.0s' $(seq 256))
# (a long value is cut short in the message: 100 characters, then "...")
bad name-too-long 1 "name=${long:0:95}...: longer than 255 bytes" <<CONF
client file=a.img key=k listen=127.0.0.1/$P name=$long
CONF

# --- listen= ---------------------------------------------------------------
bad port-zero 1 "listen=127.0.0.1/0: bad port (1 to 65535)" <<CONF
client file=a.img key=k listen=127.0.0.1/0
CONF
bad port-too-big 1 "listen=127.0.0.1/65536: bad port (1 to 65535)" <<CONF
client file=a.img key=k listen=127.0.0.1/65536
CONF
bad port-not-digits 1 "listen=127.0.0.1/+80: bad port (1 to 65535)" <<CONF
client file=a.img key=k listen=127.0.0.1/+80
CONF
bad port-missing 1 "listen=127.0.0.1: no port (write ADDRESS/PORT)" <<CONF
client file=a.img key=k listen=127.0.0.1
CONF
bad address-octet 1 "listen=10.0.0.300/$P: bad address" <<CONF
client file=a.img key=k listen=10.0.0.300/$P
CONF
bad address-short 1 "listen=10.1/$P: bad address" <<CONF
client file=a.img key=k listen=10.1/$P
CONF
bad address-name 1 "listen=localhost/$P: bad address" <<CONF
client file=a.img key=k listen=localhost/$P
CONF
bad address-empty 1 "listen=/$P: bad address" <<CONF
client file=a.img key=k listen=/$P
CONF
bad address-bracket 1 "listen=[::1/$P: bad address" <<CONF
client file=a.img key=k listen=[::1/$P
CONF
bad address-ipv6 1 "listen=::g/$P: bad address" <<CONF
client file=a.img key=k listen=::g/$P
CONF
bad tls-off-not-loopback 2 "tls=off: allowed only on a loopback address (127.0.0.0/8 or ::1), not listen=10.0.0.1/$((P + 1))" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
export listen=10.0.0.1/$((P + 1)) tls=off
CONF
bad export-on-client-address 2 "listen=127.0.0.1/$P: already the address of the client on line 1; an export needs an address of its own" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
export listen=127.0.0.1/$P
CONF
bad wildcard-overlap 3 "listen=127.0.0.1/$P: overlaps listen=*/$P of the client on line 1 (the two cannot both be bound; give both the same address)" <<CONF
client file=a.img key=k listen=*/$P
client file=b.img key=k \\
   listen=127.0.0.1/$P
CONF

# --- whole file --------------------------------------------------------------
bad duplicate-image 3 "file=sub/../a.img: the same image ($C/a.img) as the client on line 1" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
client key=k listen=127.0.0.1/$((P + 1)) \\
   file=sub/../a.img
CONF
ln -s "$C" "$T/link"
bad duplicate-image-link 2 "file=$T/link/a.img: the same image ($C/a.img) as the client on line 1" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
client file=$T/link/a.img key=k listen=127.0.0.1/$((P + 1))
CONF
bad duplicate-name 2 "name=x: the client on line 1 at listen=127.0.0.1/$P has this name too" <<CONF
client file=a.img key=k listen=127.0.0.1/$P name=x
client file=b.img key=k listen=127.0.0.1/$P name=x
CONF
bad duplicate-name-v6 2 "name=x: the client on line 1 at listen=::1/$P has this name too" <<CONF
client file=a.img key=k listen=::1/$P name=x
client file=b.img key=k listen=[::1]/$P name=x
CONF
bad duplicate-default-name 2 "name b.img (the default: the file= value) is the name of the client on line 1 at listen=127.0.0.1/$P too; give this one a name=" <<CONF
client file=a.img key=k listen=127.0.0.1/$P name=b.img
client file=b.img key=k listen=127.0.0.1/$P
CONF
lbd_n no-client <<CONF
# only comments and an export

export listen=127.0.0.1/$P
CONF
check "no client lines: refused (a whole-file error: no line)" \
    test "$RC" = 2 -a -z "$OUT" -a "$ERR" = "lbd: $C/no-client.conf: no client lines"

# --- continuations --------------------------------------------------------------
bad continued-line-error 4 "listen=127.0.0.1/99999: bad port (1 to 65535)" <<CONF
# a continued statement: the error names the line of the bad word
client file=a.img \\
   key=k \\
   listen=127.0.0.1/99999 \\
   name=a
CONF
bad missing-backslash 2 "name=a: unknown key for server-wide settings (expected metrics); does the line before lack a continuation backslash?" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
   name=a
CONF
# A backslash with blanks after it (shown doubled, as \\).
printf 'client key=k \\\n   file=a.img\\  \n   listen=127.0.0.1/%s\n' "$P" >"$T/in"
bad backslash-blank 2 'file=a.img\\: a backslash continues a line only as its last character, but blanks or a comment follow it' <"$T/in"
printf 'client file=a.img key=k \\ # comment\n   listen=127.0.0.1/%s\n' "$P" >"$T/in"
bad backslash-comment 1 '\\: a backslash continues a line only as its last character, but blanks or a comment follow it' <"$T/in"
# A backslash ending a comment continues nothing.
bad comment-backslash 2 "name=a: unknown key for server-wide settings (expected metrics); does the line before lack a continuation backslash?" <<CONF
client file=a.img key=k listen=127.0.0.1/$P # comment \\
   name=a
CONF
printf 'client file=a.img key=k listen=127.0.0.1/%s\nclient file=b.img\0 key=k\n' "$P" >"$T/in"
bad nul-byte 2 "NUL byte: is this a text file?" <"$T/in"
printf 'client file=a.img key=k listen=127.0.0.1/%s\n\n\nclient file=b.img \033[31m\n' "$P" >"$T/in"
bad control-byte 4 'control character \x1b' <"$T/in"

# --- key files (checked by lbd, after the grammar) ---------------------------
bad key-missing 2 "key=$C/nokey: No such file or directory" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
client file=b.img \\
   key=nokey listen=127.0.0.1/$((P + 1))
CONF
cp "$C/k" "$C/k644"; chmod 644 "$C/k644"
bad key-mode-0644 1 "key=$C/k644: permissions 0644 are too open; chmod 600 it, or pass --allow-open-key" <<CONF
client file=a.img key=k644 listen=127.0.0.1/$P
CONF
good key-mode-0644-allowed --allow-open-key <"$C/key-mode-0644.conf"
cp "$C/k" "$C/k640"; chmod 640 "$C/k640"
bad key-mode-0640 1 "key=$C/k640: permissions 0640 are too open; chmod 600 it, or pass --allow-open-key" <<CONF
client file=a.img key=k640 listen=127.0.0.1/$P
CONF
: >"$C/kempty"; chmod 600 "$C/kempty"
bad key-empty 1 "key=$C/kempty: is empty" <<CONF
client file=a.img key=kempty listen=127.0.0.1/$P
CONF
mkdir -p "$C/kdir"
bad key-directory 1 "key=$C/kdir: not a regular file" <<CONF
client file=a.img key=kdir listen=127.0.0.1/$P
CONF

# --- server-wide settings (a line of KEY=VALUE, no keyword) -----------------
good metrics <<CONF
metrics=stats/lbd.prom   # relative to the config's folder
client file=a.img key=k listen=127.0.0.1/$P
CONF
bad metrics-twice 4 "metrics=b.prom: duplicate key (metrics= is already given on line 1)" <<CONF
metrics=a.prom
client file=a.img key=k \\
    listen=127.0.0.1/$P
metrics=b.prom
CONF
bad metrics-empty 2 "metrics=: empty value" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
metrics=
CONF
bad metrics-folder 2 "metrics=$C/: names a folder; give a file's name" <<CONF
client file=a.img key=k listen=127.0.0.1/$P
metrics=$C/
CONF
bad setting-unknown 1 "metric=a.prom: unknown key for server-wide settings (expected metrics)" <<CONF
metric=a.prom
client file=a.img key=k listen=127.0.0.1/$P
CONF
bad setting-on-client 1 "metrics=a.prom: unknown key for client (expected file, key, listen, type, name, encrypt, max-rate, history or verify)" <<CONF
client file=a.img key=k listen=127.0.0.1/$P metrics=a.prom
CONF
# A metrics= lbd cannot write stops it at start, before it serves.
cat >"$C/metrics-nofolder.conf" <<CONF
client file=a.img key=k listen=127.0.0.1/$(free_port)
metrics=nofolder/lbd.prom
CONF
OUT=$(timeout 10 "$LBD" --control="$T/ctl" "$C/metrics-nofolder.conf" 2>"$T/err"); RC=$?
check "a metrics= in a missing folder: lbd does not start ($RC), says why" \
    test "$RC" = 1 -a "$(cat "$T/err")" = "lbd: $C/metrics-nofolder.conf:2: metrics=$C/nofolder/lbd.prom: $C/nofolder/lbd.prom.tmp: No such file or directory"

# --- the file itself ---------------------------------------------------------
OUT=$("$LBD" -n "$C/absent.conf" 2>"$T/err"); RC=$?
check "a missing config: its own message, status 2" \
    test "$RC" = 2 -a "$(cat "$T/err")" = "lbd: $C/absent.conf: No such file or directory"
OUT=$("$LBD" -n "$C" 2>"$T/err"); RC=$?
check "a folder as config: refused" \
    test "$RC" = 2 -a "$(cat "$T/err")" = "lbd: $C: Is a directory"

done_testing
