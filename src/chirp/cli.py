"""chirp's command line: ``python -m chirp demo`` and friends."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import wait

from . import ChirpTimeoutError, Node


def _peer(args: argparse.Namespace) -> int:
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


def _demo(args: argparse.Namespace) -> int:
    """Two nodes in two processes: synchronous, asynchronous, request/reply."""
    child = subprocess.Popen(
        [sys.executable, "-m", "chirp", "_peer", "--port", "0", "--lifetime", "120"],
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


def _pki(args: argparse.Namespace) -> int:
    """Make a CA and node certificate files (libchirp's layout) in a directory."""
    from .pki import PKIError, make_pki

    try:
        paths = make_pki(args.directory, args.name or ["node"], days=args.days)
    except (PKIError, ValueError) as e:
        print(f"chirp pki: {e}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        what = {"ca": "CA certificate", "dh": "DH parameters (dh_params_pem)"}.get(
            name, "node file: certificate, CA, key (cert_chain_pem)"
        )
        print(f"{path}  {what}")
    return 0


def _bench_script() -> str | None:
    """bench/run.py of the chirp source tree around the working directory."""
    here = os.getcwd()
    while True:
        script = os.path.join(here, "bench", "run.py")
        header = os.path.join(here, "csrc", "include", "chirp.h")
        if os.path.exists(script) and os.path.exists(header):
            return script
        up = os.path.dirname(here)
        if up == here:
            return None
        here = up


def _bench(args: argparse.Namespace) -> int:
    """Say where the benchmarks are: they need the source tree (csrc/, the C
    benchmarks), so they live there and not in the package."""
    script = _bench_script()
    cmd = shlex.join([sys.executable, script or "bench/run.py", *args.args])
    print(
        "chirp bench: the benchmarks are not part of the package; they run from\n"
        "chirp's source tree (see bench/README.md there), with a python that has\n"
        f"chirp installed:\n  {cmd}"
        + ("" if script else "\n(no chirp source tree around this directory)"),
        file=sys.stderr,
    )
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m chirp`` and the ``chirp`` script."""
    p = argparse.ArgumentParser(prog="chirp", description="chirp message passing")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="two nodes in two processes exchanging messages")
    d.add_argument("--count", type=int, default=2000, help="messages per scenario")
    d.add_argument("--size", type=int, default=64, help="payload size in bytes")
    d.set_defaults(func=_demo)
    k = sub.add_parser("pki", help="make a CA and node certificate files for TLS")
    k.add_argument("directory", help="where to write ca.pem, NAME.pem and dh.pem")
    k.add_argument("--name", action="append", help="a node file to make (repeatable)")
    k.add_argument("--days", type=int, default=3650, help="validity in days")
    k.set_defaults(func=_pki)
    # prefix_chars="+": no options of its own, so words like --quick are
    # taken as they come and shown in the bench/run.py command it prints.
    b = sub.add_parser(
        "bench", help="where the benchmarks are (in the source tree)", prefix_chars="+"
    )
    b.add_argument("args", nargs="*")
    b.set_defaults(func=_bench)
    q = sub.add_parser("_peer", help=argparse.SUPPRESS)
    q.add_argument("--port", type=int, default=0)
    q.add_argument("--lifetime", type=float, default=120.0)
    q.set_defaults(func=_peer)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
