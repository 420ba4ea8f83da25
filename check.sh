#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Install what is needed, build, and run the whole test suite.
# The last line is "N passed, N failed, N skipped" (test cases, as
# Automake's TAP driver counts them).  Exits non-zero if any failed, and
# under CI also if any skipped: CI has every capability a test needs.
cd "$(dirname "$0")" || exit 1
./scripts/install-deps.sh || exit 1
./scripts/build.sh || exit 1
# The tests use their own units and folders, so they run in parallel.
make -s -j"$(nproc)" check VERBOSE=1 >check.log 2>&1
rc=$?
grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR):|^# (TOTAL|PASS|SKIP|FAIL|ERROR)' check.log | \
    grep -v '^PASS:' | tail -40
passed=0 failed=0 skipped=0
# Every test's .trs, wherever its program lives (tests/, lbd/).
for f in $(find . -name '*.trs' -not -path './.git/*'); do
    p=$(grep -cE '^:test-result: (PASS|XFAIL)' "$f")
    x=$(grep -cE '^:test-result: (FAIL|XPASS|ERROR)' "$f")
    s=$(grep -c '^:test-result: SKIP' "$f")
    passed=$((passed + p)) failed=$((failed + x)) skipped=$((skipped + s))
done
[ "$rc" != 0 ] && [ "$failed" = 0 ] && failed=1   # make itself failed
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] || exit 1
[ "${CI:-}" = true ] && [ "$skipped" != 0 ] && exit 1
exit 0
