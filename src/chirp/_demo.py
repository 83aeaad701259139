"""``chirp demo``: two nodes in two processes, synchronous, asynchronous and
request/reply.  The second process runs this module:
``python -m chirp._demo --port 0`` (not a command of the chirp tool)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import wait

from . import ChirpTimeoutError, Node


def run_peer(args: argparse.Namespace) -> int:
    """The demo's second process: replies to requests, counts the rest."""
    count = 0
    with Node(port=args.port, synchronous=False, disable_encryption=True, bind_v6="") as node:
        print(f"READY {node.port}", flush=True)
        deadline = time.monotonic() + args.lifetime
        while time.monotonic() < deadline:
            try:
                batch = node.recv_many(64, timeout=0.5)
            except ChirpTimeoutError:
                continue
            for msg in batch:
                if msg.header == b"echo":
                    node.reply_async(msg, msg.data)
                elif msg.header == b"count?":
                    node.reply(msg, str(count).encode())
                elif msg.header == b"bye":
                    node.reply(msg, b"bye")
                    return 0
                else:
                    count += 1
    return 0


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} msg/s" if seconds > 0 else "n/a"


def demo(args: argparse.Namespace) -> int:
    """Two nodes in two processes: synchronous, asynchronous, request/reply."""
    child = subprocess.Popen(
        [sys.executable, "-m", "chirp._demo", "--port", "0", "--lifetime", "120"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        if not line.startswith("READY "):
            print("demo: the peer process did not start", file=sys.stderr)
            return 1
        peer = ("127.0.0.1", int(line.split()[1]))
        print(f"peer process {child.pid} listening on {peer[0]}:{peer[1]}")
        n = args.count
        payload = b"x" * args.size
        with Node(port=0, synchronous=True, disable_encryption=True, bind_v6="") as sync_node:
            print(f"synchronous node on port {sync_node.port}, identity {sync_node.identity.hex()}")
            t = time.perf_counter()
            for _ in range(n):
                sync_node.send(peer, payload)
            dt = time.perf_counter() - t
            print(f"  sent {n} x {args.size} B synchronously, each acknowledged: {_rate(n, dt)}")
            t = time.perf_counter()
            futs = [sync_node.send_async(peer, payload) for _ in range(n)]
            wait(futs)
            dt = time.perf_counter() - t
            failed = sum(1 for f in futs if f.exception() is not None)
            print(
                f"  sent {n} x {args.size} B synchronously, pipelined futures: "
                f"{_rate(n, dt)} ({failed} failed)"
            )
        with Node(port=0, synchronous=False, disable_encryption=True, bind_v6="") as node:
            print(f"asynchronous node on port {node.port}")
            m = n * 10
            t = time.perf_counter()
            futs = [node.send_async(peer, payload) for _ in range(m)]
            wait(futs)
            dt = time.perf_counter() - t
            failed = sum(1 for f in futs if f.exception() is not None)
            print(f"  sent {m} x {args.size} B asynchronously: {_rate(m, dt)} ({failed} failed)")
            t = time.perf_counter()
            for i in range(n):
                answer = node.request(peer, b"ping %d" % i, header=b"echo")
                assert answer.data == b"ping %d" % i
            dt = time.perf_counter() - t
            print(f"  {n} request/reply round trips: {_rate(n, dt)}")
            got = int(node.request(peer, b"", header=b"count?").data)
            print(f"  the peer counted {got} messages (expected {2 * n + m})")
            node.request(peer, b"", header=b"bye")
        child.wait(timeout=10)
        print("demo done")
        return 0 if got == 2 * n + m else 1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def main(argv: list[str] | None = None) -> int:
    """The peer process of the demo."""
    p = argparse.ArgumentParser(prog="python -m chirp._demo")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--lifetime", type=float, default=120.0)
    return run_peer(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
