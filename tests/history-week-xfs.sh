#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# history-week.sh with the image on XFS (a loop device this test
# makes): restore points are reflinked copies (FICLONE).
HISTORY_SRVFS=xfs exec bash "${top_srcdir:-.}/tests/history-week.sh"
