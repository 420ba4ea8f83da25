#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# tests/test-stress with a persistent capture: 16 activity-log slots of
# 64K regions under four writers, evictions and copy generations waiting
# for their journal records while the filter degrades and resumes.
# Every write may wait for an fdatasync here: fewer cycles than without.
exec "${top_builddir:-.}/tests/test-stress" 12 20 state
