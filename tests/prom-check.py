#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# prom-check.py FILE: a strict check of a Prometheus text-format file
# (version 0.0.4, what node_exporter's textfile collector reads), for
# where promtool is not installed; and the naming rules promtool's
# linter applies.  Prints each problem as "FILE:LINE: why" and exits 1
# if there is any, else prints "FILE: N families, M samples" and exits 0.
import re, sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf)"
LABELVALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s=%s)(?:,%s=%s)*)?\})? (%s)(?: (-?[0-9]+))?$"
                    % (NAME, LABEL, LABELVALUE, LABEL, LABELVALUE, VALUE))
PAIR = re.compile(r"(%s)=(%s)" % (LABEL, LABELVALUE))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

path = sys.argv[1]
data = open(path, "rb").read()
problems = []
def bad(n, why):
    problems.append("%s:%d: %s" % (path, n, why))

try:
    text = data.decode("utf-8")
except UnicodeDecodeError as e:
    print("%s: not UTF-8: %s" % (path, e)); sys.exit(1)
if not text.endswith("\n"):
    bad(text.count("\n") + 1, "the file does not end with a newline")
help_, type_, seen, done, series = {}, {}, set(), set(), set()
current, nsamples = None, 0
for n, line in enumerate(text.split("\n")[:-1], 1):
    if line == "":
        bad(n, "an empty line"); continue
    if line.startswith("#"):
        m = re.match(r"^# (HELP|TYPE) (%s) (.*)$" % NAME, line)
        if not m:
            if re.match(r"^# (HELP|TYPE)\b", line):
                bad(n, "a malformed %s line" % line[2:6])
            continue                     # a comment
        kind, name, rest = m.groups()
        if name in done:
            bad(n, "%s %s after that family's samples ended" % (kind, name))
        if kind == "HELP":
            if name in help_: bad(n, "a second HELP for %s" % name)
            if rest.strip() == "": bad(n, "an empty HELP for %s" % name)
            help_[name] = rest
        else:
            if name in type_: bad(n, "a second TYPE for %s" % name)
            if rest not in TYPES: bad(n, "unknown type %r" % rest)
            if name in seen: bad(n, "TYPE %s after its samples" % name)
            type_[name] = rest
        continue
    m = SAMPLE.match(line)
    if not m:
        bad(n, "not a sample line: %r" % line); continue
    name, labels, value, _ = m.groups()
    nsamples += 1
    if name != current:
        if current is not None:
            done.add(current)
        if name in done:
            bad(n, "samples of %s are not together" % name)
        current = name
    seen.add(name)
    pairs = PAIR.findall(labels or "")
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        bad(n, "a label given twice")
    if any(k.startswith("__") for k in keys):
        bad(n, "a label name starting with __ is reserved")
    key = (name, tuple(sorted(pairs)))
    if key in series:
        bad(n, "the same series twice")
    series.add(key)
    t = type_.get(name)
    if t is None:
        bad(n, "%s has no TYPE line before its samples" % name)
    if name not in help_:
        bad(n, "%s has no HELP line" % name)
    # promtool's lint rules, for the types we write
    if t == "counter" and not name.endswith("_total"):
        bad(n, "counter %s should end in _total" % name)
    if t != "counter" and name.endswith("_total"):
        bad(n, "non-counter %s should not end in _total" % name)
    if t == "counter" and (value.startswith("-") or value == "NaN"):
        bad(n, "counter %s has value %s" % (name, value))
for name in set(help_) | set(type_):
    if name not in seen:
        bad(0, "%s has HELP or TYPE but no samples" % name)
for p in problems:
    print(p)
if problems:
    sys.exit(1)
print("%s: %d families, %d samples" % (path, len(seen), nsamples))
