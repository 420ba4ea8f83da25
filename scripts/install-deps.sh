#!/bin/sh
# Install what livebackup needs to build and test, on Debian 12.
# Every package here is used: the build (autotools, compilers, the
# nbdkit, libnbd, GnuTLS, zstd and zlib headers) or the tests (nbdkit and its
# plugins, libnbd's tools and nbdsh, fio, qemu-io, e2fsprogs, fuse3 for
# nbdfuse, iproute2 for network namespaces and tc, gnutls-bin for
# gnutls-cli, valgrind, clang for sanitizers and fuzzers).
set -e
PACKAGES="build-essential autoconf automake libtool pkg-config clang
  nbdkit nbdkit-plugin-dev libnbd-dev libnbd-bin python3-libnbd
  libgnutls28-dev gnutls-bin libzstd-dev zlib1g-dev
  fio qemu-utils e2fsprogs fuse3 iproute2 util-linux procps valgrind"
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
