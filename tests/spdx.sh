#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Every source file the tree tracks (C, headers, scripts, Makefile.am,
# configure.ac, man pages, units, example configs) names its licence in
# an SPDX line near its top (LICENSE: BSD-3-Clause).
. "${top_srcdir:-.}/tests/functions.sh"
git -C "$top_srcdir" rev-parse --git-dir >/dev/null 2>&1 || skip "not a git checkout: no list of tracked files"
missing=$(cd "$top_srcdir" && git ls-files |
    grep -E '\.(c|h|sh|py|am|ac|in|[158]|conf|env)$|^\.ci/run$' | grep -v '^fuzz/corpus/' |
    while read -r f; do
        head -c 2000 "$f" | grep -q "SPDX-License-Identifier: BSD-3-Clause" || echo "$f"
    done)
n=$(cd "$top_srcdir" && git ls-files | grep -cE '\.(c|h|sh|py|am|ac|in|[158]|conf|env)$|^\.ci/run$')
check "every one of the $n source files has its SPDX line${missing:+ (missing: $(echo $missing))}" test -z "$missing"
done_testing
