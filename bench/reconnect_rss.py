"""The receiver's memory under a sender that reconnects after each timeout.

    python bench/reconnect_rss.py [--seconds 20] [--size 1048576] [--max-memory BYTES]

A receiver (its own process) that never reads: synchronous,
auto_release=False, 16 slots.  A synchronous sender with a 0.3 s timeout
sends SIZE-byte messages, 16 at a time; they time out, the sender's
connection closes, the next round connects again.  Prints the
receiver's resident memory (VmRSS) once a second, and the largest.
Before the node-wide budget (max_memory) every round's connection
brought fresh slots full of messages the receiver held."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import chirp

RECEIVER = """
import sys, time, chirp
opts = dict(port=0, synchronous=True, auto_release=False, disable_encryption=True)
if len(sys.argv) > 1:
    opts["max_memory"] = int(sys.argv[1])
    opts["max_msg_size"] = min(opts["max_memory"], 100 << 20)
node = chirp.Node(**opts)
print(node.port, flush=True)
sys.stdin.read()  # until the bench closes stdin
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--size", type=int, default=1 << 20)
    p.add_argument("--max-memory", type=int, help="the receiver's (default: its default)")
    args = p.parse_args()
    argv = [sys.executable, "-c", RECEIVER]
    if args.max_memory:
        argv.append(str(args.max_memory))
    rx = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert rx.stdout is not None and rx.stdin is not None
    port = int(rx.stdout.readline())
    start_kib = rss_kib(rx.pid)
    print(f"receiver pid {rx.pid}: {start_kib / 1024:.1f} MiB at start")
    data = b"x" * (args.size - 64)
    rounds = failed = 0
    peak = start_kib
    with chirp.Node(port=0, synchronous=True, timeout=0.3, disable_encryption=True) as tx:
        t0 = next_print = time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            futs = [tx.send_async(("127.0.0.1", port), data) for _ in range(16)]
            failed += sum(f.exception(timeout=30) is not None for f in futs)
            rounds += 1
            peak = max(peak, rss_kib(rx.pid))
            if time.monotonic() >= next_print:
                print(f"{time.monotonic() - t0:5.1f} s: {rss_kib(rx.pid) / 1024:7.1f} MiB, "
                      f"{rounds} rounds, {failed} sends failed")  # fmt: skip
                next_print += 1.0
    peak = max(peak, rss_kib(rx.pid))
    print(f"largest: {peak / 1024:.1f} MiB after {rounds} rounds ({failed} sends failed)")
    rx.stdin.close()
    rx.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
