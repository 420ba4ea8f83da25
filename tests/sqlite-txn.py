#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# An fsync-heavy writer and its checker, for tests/lb-sqlite.sh and
# bench/sync-bench.sh: SQLite in WAL mode with synchronous=FULL, one row
# per transaction, numbered 1, 2, 3 ... with nothing else in between.
#
#   sqlite-txn.py write DB PROGRESS SECONDS [MAX]
#       Commit transactions for SECONDS (at most MAX).  After each commit
#       returns, PROGRESS holds its number (written in place, no fsync:
#       the test reads it, not a crash).  Prints the count at the end.
#   sqlite-txn.py check DB
#       Open a copy (its -wal beside it is recovered), run
#       PRAGMA integrity_check, and check that the rows are exactly
#       1 .. N.  Prints "ok N", or the reason and exits 1.
import os
import sqlite3
import sys
import time


def write(db, progress, seconds, most):
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, "
                "pad BLOB NOT NULL)")
    n = con.execute("SELECT coalesce(max(n), 0) FROM t").fetchone()[0]
    fd = os.open(progress, os.O_WRONLY | os.O_CREAT, 0o644)
    end = time.monotonic() + seconds
    done = 0
    while time.monotonic() < end and (most == 0 or done < most):
        n += 1
        con.execute("BEGIN")
        # Some bytes that do not compress: a page or two per row.
        con.execute("INSERT INTO t VALUES (?, ?)", (n, os.urandom(1500)))
        con.execute("COMMIT")
        done += 1
        os.pwrite(fd, b"%-20d\n" % n, 0)
    os.close(fd)
    con.close()
    print(done)


def check(db):
    con = sqlite3.connect(db, isolation_level=None)
    r = con.execute("PRAGMA integrity_check").fetchall()
    if r != [("ok",)]:
        print("integrity_check:", r[:5])
        return 1
    tables = con.execute("SELECT count(*) FROM sqlite_master "
                         "WHERE name = 't'").fetchone()[0]
    if tables == 0:
        print("ok 0")           # a copy from before the first commit
        return 0
    count, lo, hi = con.execute("SELECT count(*), min(n), max(n) "
                                "FROM t").fetchone()
    if count and (lo != 1 or hi != count):
        print("not a gap-free prefix: %d rows, %s .. %s" % (count, lo, hi))
        return 1
    print("ok", count)
    return 0


def main(argv):
    if len(argv) >= 5 and argv[1] == "write":
        write(argv[2], argv[3], float(argv[4]),
              int(argv[5]) if len(argv) > 5 else 0)
        return 0
    if len(argv) == 3 and argv[1] == "check":
        return check(argv[2])
    print(__doc__ or "usage: sqlite-txn.py write|check ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
