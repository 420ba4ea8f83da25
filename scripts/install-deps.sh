#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Install what livebackup needs to build and test, on Debian 12.
# Every package here is used: the build (autotools, compilers, the
# nbdkit, libnbd, GnuTLS, zstd, zlib and xxHash headers) or the tests (nbdkit and its
# plugins, libnbd's tools and nbdsh, fio, qemu-io, e2fsprogs, fuse3 for
# nbdfuse, iproute2 for network namespaces and tc, gnutls-bin for
# gnutls-cli, valgrind, clang for sanitizers and fuzzers), the production
# set-up in README.md (nbd-client), and the install test (systemd for
# systemd-analyze and systemd-sysusers, which it runs on files only:
# installing the package does not make systemd PID 1; groff-base for
# groff), git for .ci/run's demo from a fresh clone, and xfsprogs for
# the restore point tests on XFS (reflinks: tests/history-*-xfs.sh).
# Not prometheus, whose promtool tests/lbd-metrics.sh would use: the
# package is 96 MB, adds a system user and starts a Prometheus server on
# port 9090 (enabled at boot) when installed.  The test checks the
# metrics file with tests/prom-check.py, and with promtool too if one is
# on PATH (or named by PROMTOOL=).
set -e
PACKAGES="build-essential autoconf automake libtool pkg-config clang
  nbdkit nbdkit-plugin-dev libnbd-dev libnbd-bin python3-libnbd
  libgnutls28-dev gnutls-bin libzstd-dev zlib1g-dev libxxhash-dev
  fio qemu-utils e2fsprogs fuse3 iproute2 util-linux procps valgrind
  nbd-client systemd groff-base git xfsprogs"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
missing=
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi
