#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Configure and build in the source tree (idempotent).
set -e
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure -q "$@"
make -j"$(nproc)" -s
