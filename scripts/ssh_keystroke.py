#!/usr/bin/env python3
"""Keystroke round-trip latency of an interactive ssh session.

Runs COMMAND (an `ssh -tt ...` line) on a pseudo-terminal of its own, so
that ssh puts that terminal in raw mode as it does for a person typing.
The remote command must switch its terminal to raw mode without echo,
print READY and then copy its input to its output, for example

    stty raw -echo; echo READY; exec cat

Each byte written to the terminal then comes back exactly once (cat's copy)
after crossing ssh, the network path and the remote pty both ways. The
script sends one byte, waits for it, and repeats: --warmup times unmeasured,
then --count times measured. It prints key=value lines:

    count=2000
    median_ms=0.123
    p99_ms=0.456
    mean_ms=...  min_ms=...  max_ms=...

and exits non-zero (with the session's output so far) when the session does
not become ready, a byte does not come back within --timeout seconds, or
something other than the byte sent comes back.

    scripts/ssh_keystroke.py [--count N] [--warmup N] [--timeout S] -- ssh -tt ... HOST CMD

Standard library only.
"""

import argparse
import math
import os
import pty
import select
import signal
import sys
import time

READY = b"READY"
# Printable bytes that no layer treats specially: no newline (ssh's escape
# character only counts after one, and -e none turns it off anyway), no
# control characters (raw mode passes them, but better not to rely on it).
ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789"


def fail(msg, seen=b""):
    tail = seen[-500:].decode("utf-8", "replace")
    sys.stderr.write(f"ssh_keystroke.py: {msg}\n")
    if tail:
        sys.stderr.write(f"--- session output (last 500 bytes):\n{tail}\n")
    sys.exit(1)


def read_some(fd, deadline):
    """Bytes from fd, waiting at most until deadline; b"" at EOF; None on timeout."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    ready, _, _ = select.select([fd], [], [], left)
    if not ready:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the child closed the terminal
        return b""


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    k = math.ceil(p / 100 * len(sorted_values)) - 1
    return sorted_values[max(0, min(len(sorted_values) - 1, k))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000, help="measured round trips (default 2000)")
    ap.add_argument("--warmup", type=int, default=100, help="unmeasured round trips first (default 100)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds to wait for READY and for each byte (default 10)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the ssh command line")
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("give the ssh command after --")
    if args.count < 1 or args.warmup < 0:
        ap.error("--count must be positive and --warmup not negative")

    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)

    try:
        # Wait for the remote side to be raw, silent and copying.
        seen = b""
        deadline = time.monotonic() + args.timeout
        while READY not in seen:
            chunk = read_some(fd, deadline)
            if chunk is None:
                fail(f"the session did not print {READY.decode()} within {args.timeout} s", seen)
            if chunk == b"":
                fail("the session ended before it was ready", seen)
            seen += chunk
        # Whatever follows READY (its newline) is not an echo; let it arrive.
        after = seen.split(READY, 1)[1]
        while not after.endswith(b"\n"):
            chunk = read_some(fd, time.monotonic() + 1.0)
            if not chunk:
                break
            after += chunk

        samples = []
        total = args.warmup + args.count
        for i in range(total):
            b = ALPHABET[i % len(ALPHABET):][:1]
            t0 = time.perf_counter_ns()
            os.write(fd, b)
            got = b""
            deadline = time.monotonic() + args.timeout
            while not got:
                chunk = read_some(fd, deadline)
                if chunk is None:
                    fail(f"byte {i + 1} of {total} did not come back within {args.timeout} s", seen + got)
                if chunk == b"":
                    fail(f"the session ended at byte {i + 1} of {total}", seen + got)
                got += chunk
            t1 = time.perf_counter_ns()
            if got != b:
                fail(f"sent {b!r}, got {got!r} back (is the remote terminal raw and without echo?)", seen + got)
            if i >= args.warmup:
                samples.append((t1 - t0) / 1e6)
        # Each byte must have come back once: with a terminal that still
        # echoes, or a remote side still in line mode, the copies lag behind.
        extra = read_some(fd, time.monotonic() + 0.3)
        if extra:
            fail(f"{len(extra)} more byte(s) came back than were sent: {extra[:40]!r} "
                 "(is the remote terminal raw and without echo?)", extra)
    finally:
        # Hang up: ssh sees its terminal close and ends the session.
        try:
            os.close(fd)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)

    samples.sort()
    n = len(samples)
    median = samples[n // 2] if n % 2 else (samples[n // 2 - 1] + samples[n // 2]) / 2
    print(f"count={n}")
    print(f"median_ms={median:.3f}")
    print(f"p99_ms={percentile(samples, 99):.3f}")
    print(f"mean_ms={sum(samples) / n:.3f}")
    print(f"min_ms={samples[0]:.3f}")
    print(f"max_ms={samples[-1]:.3f}")


if __name__ == "__main__":
    main()
