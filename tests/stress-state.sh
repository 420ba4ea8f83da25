#!/bin/sh
# tests/test-stress with a persistent capture: 16 activity-log slots of
# 64K regions under four writers, evictions and copy generations waiting
# for their journal records while the filter degrades and resumes.
exec "${top_builddir:-.}/tests/test-stress" 10 100 state
