#!/usr/bin/python3
# relay.py [--rate=BYTES_PER_SECOND] LISTEN_PORT TARGET_HOST TARGET_PORT [PIDFILE]
#
# A TCP relay for the tests: listens on 127.0.0.1:LISTEN_PORT and forwards
# every connection to TARGET_HOST:TARGET_PORT, byte for byte, both ways.
# Killing it (any signal) cuts every connection it carries: the kernel
# closes both sides' sockets, so each end sees the connection end.  A new
# relay on the same port accepts again at once (SO_REUSEADDR).  PIDFILE is
# written once the port listens.  --rate limits each connection's client
# to target direction (what lb sends) to about that many bytes a second.
# Python standard library only.

import os
import socket
import sys
import threading
import time

rate = 0


def pump(src, dst, limit=0):
    """Copy src to dst until EOF or an error, then end both directions;
    at most about limit bytes a second if limit is not 0."""
    due = 0.0                   # when the link is free again
    try:
        while True:
            data = src.recv(16384 if limit else 1 << 16)
            if not data:
                break
            dst.sendall(data)
            if limit:
                now = time.monotonic()
                due = max(due, now) + len(data) / limit
                if due > now:
                    time.sleep(due - now)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        # One side broke: break the other too, so neither end waits on a
        # half-dead path.
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, target):
    try:
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError as e:
        sys.stderr.write("relay: %s:%d: %s\n" % (target[0], target[1], e))
        client.close()
        return
    a = threading.Thread(target=pump, args=(client, upstream, rate),
                         daemon=True)
    b = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    a.start()
    b.start()
    a.join()
    b.join()
    client.close()
    upstream.close()


def main():
    global rate
    if len(sys.argv) > 1 and sys.argv[1].startswith("--rate="):
        rate = int(sys.argv.pop(1)[len("--rate="):])
    if len(sys.argv) not in (4, 5):
        sys.stderr.write("usage: relay.py [--rate=BYTES_PER_SECOND] "
                         "LISTEN_PORT TARGET_HOST TARGET_PORT [PIDFILE]\n")
        return 2
    port = int(sys.argv[1])
    target = (sys.argv[2], int(sys.argv[3]))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
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
