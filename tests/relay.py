#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# relay.py [--rate=BYTES_PER_SECOND] [--rcvbuf=BYTES] [--count=FILE]
#          LISTEN_PORT TARGET_HOST TARGET_PORT [PIDFILE]
#
# A TCP relay for the tests: listens on 127.0.0.1:LISTEN_PORT and forwards
# every connection to TARGET_HOST:TARGET_PORT, byte for byte, both ways.
# PIDFILE is written once the port listens.  --rate limits each
# connection's client to target direction (what lb sends) to about that
# many bytes a second.  --rcvbuf sets the receive buffer of the sockets
# toward the client (SO_RCVBUF), so that a limited relay holds little of
# what lb sent, as a slow link's queue would, rather than the megabytes
# loopback's autotuning allows: lb's own send queue then shows the link
# is behind.  --count keeps FILE holding "UP DOWN OPEN": the
# bytes relayed so far, all connections together, client to target (what
# lb sent) and back, and the connections open; rewritten (atomically, by
# rename) within 50 ms of a change, so that a test counts wire bytes
# outside lb and lbd (once OPEN is 0, the others are final).  Python
# standard library only.
#
# It stands for the network path, so it ends a connection as the path
# would when one end's process dies: with a reset, at once.  When either
# side ends (EOF) or breaks (an error), what that side sent before is
# passed on (for at most a second), then both sockets are aborted: closed
# with SO_LINGER 0, which sends RST; what the other side sent and the
# relay still holds is dropped, as a reset drops it.  Not a graceful
# half-close (shutdown, then close): the relay stops reading a side it
# has shut down, so its socket toward that side can end up in FIN-WAIT-2
# still advertising the closed window it last offered; that side's
# zero-window probes are answered and its data cannot be sent, so a peer
# that only sends (lb in a catch-up) waits for its TCP_USER_TIMEOUT (30 s)
# instead of meeting the reset a dead peer's kernel would answer with.
# Killing the relay (any signal) also sends RST both ways (SO_LINGER 0 is
# set on every socket), so each end sees its connection end at once.  A
# new relay on the same port accepts again at once (SO_REUSEADDR).
#
# One thread per connection runs a poll loop over both non-blocking
# sockets, so no thread is ever left blocked in a send or receive on a
# socket another thread closed.

import errno
import fcntl
import os
import select
import socket
import struct
import sys
import threading
import time

rate = 0
count_file = None
rcvbuf = 0
counted = [0, 0, 0]             # bytes client->target, back; connections open
counted_lock = threading.Lock()
CHUNK = 1 << 16
RATE_CHUNK = 16384              # smaller reads keep a limited rate smooth
FLUSH_SECONDS = 1.0             # how long an ended side's data may drain
# The limited direction reads again when its link is due to be free within
# SLACK: poll sleeps in whole milliseconds, about a chunk's time at 20 MB/s.
# (The rate stays exact: each read moves the due time on by its length.)
SLACK = 0.002


def log(msg):
    sys.stderr.write("relay: %s\n" % msg)
    sys.stderr.flush()


def abort(s):
    """Close S with a reset (RST), discarding whatever it still holds."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


SIOCOUTQNSD = 0x894B            # linux/sockios.h


def unsent(s):
    """Bytes S's kernel holds but has not sent yet (SIOCOUTQNSD): sent
    bytes are on the wire, and a reset after them does not take them back.
    """
    try:
        buf = fcntl.ioctl(s.fileno(), SIOCOUTQNSD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]
    except OSError:
        return 0


def count(i, n):
    """Add N to counted[I] (the writer thread saves it)."""
    with counted_lock:
        counted[i] += n


def count_writer():
    """Keep the count file current: every 50 ms, when the count moved."""
    last = None
    while True:
        with counted_lock:
            now = tuple(counted)
        if now != last:
            tmp = count_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d %d %d\n" % now)
            os.rename(tmp, count_file)
            last = now
        time.sleep(0.05)


class Link:
    """One relayed connection: client (lb's side) and upstream (lbd's)."""

    def __init__(self, client, upstream):
        self.s = [client, upstream]
        # pending[i]: read from side i, not yet written to the other
        self.pending = [b"", b""]
        self.limit = [rate, 0]
        self.due = 0.0          # when the limited direction may read again
        self.ended = None       # the side that sent EOF
        self.flush_until = 0.0
        for s in self.s:
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))

    def cut(self):
        for s in self.s:
            abort(s)

    def run(self):
        count(2, 1)
        try:
            self.loop()
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE,
                               errno.ETIMEDOUT, errno.ENOTCONN):
                log("connection: %s" % e)
        finally:
            self.cut()
            count(2, -1)

    def move(self, i):
        """Move data from side i to the other side until either would
        block (or side i ends).  Send errors propagate: run cuts both."""
        o = 1 - i
        while True:
            if self.pending[i]:
                try:
                    n = self.s[o].send(self.pending[i])
                except (BlockingIOError, InterruptedError):
                    return
                self.pending[i] = self.pending[i][n:]
                count(i, n)
                continue
            if self.ended is not None:
                return
            if self.limit[i] and self.due > time.monotonic() + SLACK:
                return
            try:
                data = self.s[i].recv(RATE_CHUNK if self.limit[i] else CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""      # it broke: like an end, but reset
            if not data:
                self.ended = i
                self.flush_until = time.monotonic() + FLUSH_SECONDS
                return
            self.pending[i] = data
            if self.limit[i]:
                self.due = max(self.due, time.monotonic()) \
                    + len(data) / self.limit[i]

    def loop(self):
        p = select.poll()
        registered = [0, 0]
        while True:
            self.move(0)
            self.move(1)
            now = time.monotonic()
            timeout = None
            if self.ended is not None:
                # Pass on what the ended side sent, then cut.
                e, o = self.ended, 1 - self.ended
                if (not self.pending[e] and unsent(self.s[o]) == 0) \
                        or now >= self.flush_until:
                    return
                timeout = 0.01  # the kernel's queue drains meanwhile
            ev = [0, 0]
            for i in (0, 1):
                if self.pending[i]:
                    ev[1 - i] |= select.POLLOUT
                elif self.ended is None:
                    if self.limit[i] and self.due > now + SLACK:
                        timeout = self.due - now - SLACK / 2
                    else:
                        ev[i] |= select.POLLIN
            for i in (0, 1):
                if ev[i] != registered[i]:
                    if ev[i]:
                        p.register(self.s[i], ev[i])
                    else:
                        p.unregister(self.s[i])
                    registered[i] = ev[i]
            # POLLERR or POLLHUP wakes us too: the next move's recv or
            # send reports it.
            p.poll(None if timeout is None else timeout * 1000)


def serve(client, target):
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError as e:
        log("%s:%d: %s" % (target[0], target[1], e))
        abort(client)           # as a refused connection: reset
        return
    Link(client, upstream).run()


def main():
    global rate, count_file, rcvbuf
    while len(sys.argv) > 1 and sys.argv[1].startswith("--"):
        a = sys.argv.pop(1)
        if a.startswith("--rate="):
            rate = int(a[len("--rate="):])
        elif a.startswith("--rcvbuf="):
            rcvbuf = int(a[len("--rcvbuf="):])
        elif a.startswith("--count="):
            count_file = a[len("--count="):]
        else:
            sys.argv[1:] = []
            break
    if len(sys.argv) not in (4, 5):
        sys.stderr.write("usage: relay.py [--rate=BYTES_PER_SECOND] "
                         "[--rcvbuf=BYTES] [--count=FILE] LISTEN_PORT "
                         "TARGET_HOST "
                         "TARGET_PORT [PIDFILE]\n")
        return 2
    port = int(sys.argv[1])
    target = (sys.argv[2], int(sys.argv[3]))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    if count_file is not None:
        threading.Thread(target=count_writer, daemon=True).start()
    if len(sys.argv) == 5:
        tmp = sys.argv[4] + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(tmp, sys.argv[4])
    while True:
        client, _ = ls.accept()
        threading.Thread(target=serve, args=(client, target),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
