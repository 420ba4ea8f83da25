#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# make install DESTDIR=$T/root: the programs, the filter (in nbdkit's
# filter folder), the man pages, the systemd units, the sysusers.d file
# and the examples land where they belong; every unit passes
# systemd-analyze verify in a staged root, and so do the mounts that
# README.md's fstab lines make, with the chain of units under them; every
# man page renders with groff -ww and no warning; the example lbd.conf
# passes lbd -n; the example environment file sets every variable the
# units use.
. "${top_srcdir:-.}/tests/functions.sh"
requires systemd-analyze
requires systemd-sysusers
requires groff
requires nbdkit

R=$T/root
quiet () { "$@" >/dev/null 2>&1; }
# A make of its own: not the jobserver of the make check that runs us.
make_ () {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -s -C "$top_builddir" "$@"
}
make_ print-install-dirs >"$T/dirs" || bail "make print-install-dirs failed"
sbindir= filterdir= mandir= systemdunitdir= sysusersdir= examplesdir= docdir=
. "$T/dirs"
diag "$(tr '\n' ' ' <"$T/dirs")"

if make_ install DESTDIR="$R" >"$T/install.log" 2>&1; then
    ok "make install DESTDIR=$R"
else
    sed 's/^/# /' "$T/install.log"; bail "make install failed"
fi

# --- the programs and the filter -------------------------------------------
for p in lb lbd; do
    check "$p installed in $sbindir and runs" quiet "$R$sbindir/$p" --version
done
SO=$R$filterdir/nbdkit-livewatch-filter.so
check "the filter installed in nbdkit's filter folder $filterdir" test -f "$SO"
check "no libtool .la beside it" test ! -e "${SO%.so}.la"
check "nbdkit loads the installed filter" \
    quiet nbdkit --filter="$SO" null --dump-plugin

# --- man pages: each page in doc/, installed and rendering cleanly ------------
for src in "$top_srcdir"/doc/*.[1-8]; do
    page=${src##*/} sect=${src##*.}
    f=$R$mandir/man$sect/$page
    if [ -f "$f" ]; then ok "$page installed in $mandir/man$sect"
    else not_ok "$page installed in $mandir/man$sect"; continue; fi
    out=$(groff -ww -man -z "$f" 2>&1); rc=$?
    if [ "$rc" = 0 ] && [ -z "$out" ]; then ok "$page renders with groff -ww, no warning"
    else not_ok "$page renders with groff -ww, no warning"; diag "$out"; fi
done

# --- units -------------------------------------------------------------------
UNITS="nbdkit-livewatch@.service lb@.service lbd.service"
for u in $UNITS; do
    check "$u installed in $systemdunitdir" test -f "$R$systemdunitdir/$u"
done
if grep -n '@[a-z]*dir@' "$R$systemdunitdir"/*.service >"$T/unsubst"; then
    not_ok "every @dir@ in the units substituted"; sed 's/^/# /' "$T/unsubst"
else
    ok "every @dir@ in the units substituted"
fi
check "lb@.service runs the installed lb" \
    grep -q "^ExecStart=$sbindir/lb " "$R$systemdunitdir/lb@.service"
check "lbd.service runs the installed lbd" \
    grep -q "^ExecStart=$sbindir/lbd " "$R$systemdunitdir/lbd.service"

# A staged root for systemd-analyze verify --root: the installed tree,
# plus the system's own units (the targets ours are ordered against),
# plus the system's copies of the commands ours run that are not ours
# (rm, kill, nbdkit, nbd-client): a command of ours missing from the
# tree stays missing and fails the check.
mkdir -p "$R/lib/systemd/system" "$R/etc/systemd/system"
cp -a /lib/systemd/system/. "$R/lib/systemd/system/"
VERIFY="lb@1.service nbdkit-livewatch@1.service lbd.service"
if [ -f /lib/systemd/system/nbd@.service ]; then
    # Debian's nbd-client unit with the example drop-in (README.md).
    mkdir -p "$R/etc/systemd/system/nbd@nbd0.service.d"
    cp "$R$examplesdir/nbd-livebackup.conf" \
       "$R/etc/systemd/system/nbd@nbd0.service.d/livebackup.conf"
    VERIFY="$VERIFY nbd@nbd0.service"
else
    diag "nbd-client's nbd@.service is not installed: the drop-in is not verified"
fi
for cmd in $(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' \
                 "$R$systemdunitdir"/*.service /lib/systemd/system/nbd@.service \
                 2>/dev/null | sort -u); do
    case $cmd in "$sbindir"/*) continue ;; esac
    case $cmd in
        /*) host=$cmd dest=$R$cmd ;;
        *) host=$(command -v "$cmd") || { not_ok "$cmd (run by a unit) is on this machine"; continue; }
           dest=$R/usr/bin/$cmd ;;
    esac
    mkdir -p "$(dirname "$dest")"
    cp "$host" "$dest"
done
for u in $VERIFY; do
    # MANPATH: the Documentation= pages, ours from the tree, nbdkit's
    # from the system.
    out=$(cd "$T" && MANPATH="$R$mandir:/usr/share/man" \
          systemd-analyze verify --root="$R" "$u" 2>&1); rc=$?
    # Debian's nbd@.service says this of itself, whatever the drop-in.
    [ "$u" = nbd@nbd0.service ] &&
        out=$(echo "$out" | grep -v 'Dependency Before=dev-nbd0.device ignored')
    if [ "$rc" = 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify $u: no complaint"
    else not_ok "systemd-analyze verify $u: no complaint (exit $rc)"; diag "$out"; fi
done

# The fstab lines of README.md, made into mount units by systemd's own
# generator, in a copy of the staged root each: the mount of /dev/nbd0
# for a protected partition, then the second tier's image folder, which
# lbd.service needs mounted.  A missing unit or an ordering cycle in the
# chain mount -> nbd@nbd0 -> nbdkit-livewatch@1 fails verify.
GEN=/lib/systemd/system-generators/systemd-fstab-generator
verify_fstab () {
    local where=$1 line S out rc u; shift
    line=$(sed -n "s|^ *\(/dev/nbd0  *$where  .*\)|\1|p" "$top_srcdir/README.md")
    if [ -z "$line" ]; then not_ok "README.md has an fstab line for $where"; return; fi
    S=$T/stage${where//\//-}
    cp -a "$R" "$S"
    echo "$line" >"$S/etc/fstab"
    SYSTEMD_FSTAB=$S/etc/fstab SYSTEMD_PROC_CMDLINE= \
        "$GEN" "$S/etc/systemd/system" "$S/etc/systemd/system" "$S/etc/systemd/system"
    for u in "$@"; do
        out=$(cd "$T" && MANPATH="$R$mandir:/usr/share/man" \
              systemd-analyze verify --root="$S" "$u" 2>&1); rc=$?
        out=$(echo "$out" | grep -v 'Dependency Before=dev-nbd0.device ignored')
        if [ "$rc" = 0 ] && [ -z "$out" ]; then ok "README's fstab line for $where: verify $u, no complaint"
        else not_ok "README's fstab line for $where: verify $u, no complaint"; diag "$out"; fi
    done
}
if [ -x "$GEN" ] && [ -f /lib/systemd/system/nbd@.service ]; then
    verify_fstab /srv/data srv-data.mount
    verify_fstab /var/lib/lbd var-lib-lbd.mount lbd.service
else
    diag "no fstab generator or no nbd@.service: README's fstab lines are not verified"
fi

# --- sysusers.d ----------------------------------------------------------------
check "sysusers.d/livebackup.conf installed in $sysusersdir" \
    test -f "$R$sysusersdir/livebackup.conf"
out=$(systemd-sysusers --root="$R" --dry-run 2>&1)
if echo "$out" | grep -q "Creating user 'lbd'"; then
    ok "systemd-sysusers would create the user lbd that lbd.service runs as"
else
    not_ok "systemd-sysusers would create the user lbd"; diag "$out"
fi

# --- examples and README ----------------------------------------------------------
for f in lbd.conf unit.env nbd-livebackup.conf; do
    check "example $f installed in $examplesdir" test -f "$R$examplesdir/$f"
done
check "README.md installed in $docdir" test -f "$R$docdir/README.md"

# The example lbd.conf as /etc/lbd/lbd.conf would be, with its key.
mkdir -p "$T/etc/lbd/keys"
cp "$R$examplesdir/lbd.conf" "$T/etc/lbd/lbd.conf"
for k in $(grep -v '^#' "$T/etc/lbd/lbd.conf" | sed -n 's/.*key=\([^ ]*\).*/\1/p'); do
    make_key "$T/etc/lbd/$k"
done
out=$("$R$sbindir/lbd" -n "$T/etc/lbd/lbd.conf" 2>&1)
if [ "$out" = "configuration OK" ]; then ok "the example lbd.conf passes lbd -n"
else not_ok "the example lbd.conf passes lbd -n"; diag "$out"; fi

# unit.env: plain NAME=VALUE lines (systemd reads no comment after a
# value), setting every variable nbdkit-livewatch@ and lb@ use (but
# $MAINPID, which systemd sets).
ENV=$R$examplesdir/unit.env
if grep -vE '^(#.*|[A-Z_]+=[^ #]*|)$' "$ENV" >"$T/badlines"; then
    not_ok "unit.env holds only comments and NAME=VALUE lines"; sed 's/^/# /' "$T/badlines"
else
    ok "unit.env holds only comments and NAME=VALUE lines"
fi
for v in $(cat "$R$systemdunitdir/nbdkit-livewatch@.service" \
               "$R$systemdunitdir/lb@.service" |
           sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | grep '^Exec' |
           grep -o '\${\?[A-Z_][A-Z_]*' | tr -d '${' | sort -u |
           grep -vx MAINPID); do     # systemd's own
    check "unit.env sets $v, which a unit uses" grep -q "^$v=" "$ENV"
done

done_testing
