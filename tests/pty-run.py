#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# pty-run.py OUT COLUMNS CMD [ARGS...]: run CMD with a pseudo-terminal
# of COLUMNS columns as its standard input, output and error, copy all
# it writes there to the file OUT, and exit with its status (128 + N
# for signal N).  For tests of what a program shows on a terminal.
import os, pty, struct, sys, fcntl, termios, signal

out, cols, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
# A signal to us is for the program (the test stops it so).
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda n, f: os.kill(pid, n))
with open(out, "wb", buffering=0) as f:
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        except OSError:          # EIO: the program closed the terminal
            break
        if not data:
            break
        f.write(data)
while True:
    try:
        _, status = os.waitpid(pid, 0)
        break
    except InterruptedError:
        continue
sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status)
         else 128 + os.WTERMSIG(status))
