#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The man pages match the programs: lb --help and lbd --help list every
# option their page's OPTIONS section describes, and the page describes
# every option --help lists (short and long names alike); every man page
# renders with groff -ww without a warning.
. "${top_srcdir:-.}/tests/functions.sh"
requires groff
[ -x /usr/bin/python3 ] || skip "/usr/bin/python3 not installed"

# options_of_help PROGRAM: the option names its --help lists, one a line.
options_of_help () {
    "$1" --help | /usr/bin/python3 -c '
import re, sys
for line in sys.stdin:
    m = re.match(r"^  (?:-(\w), )?\s*--([\w-]+)", line)
    if m:
        if m.group(1): print("-" + m.group(1))
        print("--" + m.group(2))' | sort -u
}
# options_of_page PAGE: the option names of the tags of its OPTIONS
# section (the line after each .TP), one a line.
options_of_page () {
    /usr/bin/python3 - "$1" <<'PY' | sort -u
import re, sys
inside, tag = False, False
for line in open(sys.argv[1]):
    if line.startswith(".SH"):
        inside = line.split(None, 1)[1].strip().strip('"') == "OPTIONS"
        continue
    if not inside:
        continue
    if line.startswith(".TP"):
        tag = True
        continue
    if tag:
        tag = False
        text = line.replace("\\-", "-")
        for m in re.finditer(r"(?<![\w-])(--[a-z][\w-]*|-[A-Za-z])(?![\w-])", text):
            print(m.group(1))
PY
}
for p in lb lbd; do
    prog=$top_builddir/$p/$p
    page=$top_srcdir/doc/$p.8
    options_of_help "$prog" >"$T/$p.help"
    options_of_page "$page" >"$T/$p.page"
    check "$p --help lists options (found $(wc -l <"$T/$p.help"))" test -s "$T/$p.help"
    missing=$(comm -23 "$T/$p.page" "$T/$p.help" | tr '\n' ' ')
    check "$p --help lists every option of $p(8) (missing: ${missing:-none})" test -z "$missing"
    missing=$(comm -13 "$T/$p.page" "$T/$p.help" | tr '\n' ' ')
    check "$p(8) describes every option of $p --help (missing: ${missing:-none})" test -z "$missing"
done
for page in "$top_srcdir"/doc/*.[158]; do
    out=$(groff -ww -man -z "$page" 2>&1)
    check "$(basename "$page") renders without a warning" test -z "$out"
    [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/#   /'
done
done_testing
