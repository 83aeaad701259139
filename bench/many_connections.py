"""One node holding many connections, and a connect storm beside a stream.

    python bench/many_connections.py [--connections 10000] [--storm 1000]

A chirp node (its own process, asynchronous, max_peer_connections=0,
backlog 4096) receives.  1. Client processes open --connections raw TCP
connections to it, each with a chirp handshake, and hold them: the
node's resident memory (VmRSS) before and after, per connection, and
whether a chirp sender still gets a message through.  2. A synchronous
chirp sender streams 64-byte messages to the node for 3 s alone, then 3 s
while a client opens --storm new connections a second (each handshakes
and closes): the stream's rate in both.  Raises the open-file limit
(root)."""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import socket
import struct
import subprocess
import sys
import time

import chirp

NODE = """
import sys, threading, chirp
node = chirp.Node(port=0, synchronous=False, max_peer_connections=0, backlog=4096,
                  disable_encryption=True, reuse_time=3600)
count = [0]
def drain():
    while True:
        try:
            count[0] += len(node.recv_many(256, timeout=1.0))
        except chirp.ChirpTimeoutError:
            pass
        except chirp.ClosedError:
            return
threading.Thread(target=drain, daemon=True).start()
print(node.port, flush=True)
for line in sys.stdin:
    if line.startswith("rss"):
        with open("/proc/self/status") as f:
            rss = [l.split()[1] for l in f if l.startswith("VmRSS:")][0]
        print(rss, node.stats()["connections_ready"], count[0], flush=True)
node.close(linger=0)
"""


def handshake(port: int, n: int) -> bytes:
    return struct.pack(">H16s", 40000 + n % 20000, n.to_bytes(16, "big"))


def holder(port: int, count: int, first: int, ready: mp.Event, done: mp.Event) -> None:
    """Open count connections, handshake each, hold them until done."""
    socks = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(handshake(port, first + i))
        socks.append(s)
    for s in socks:  # the node's handshake on each: it accepted it
        s.settimeout(30)
        got = b""
        while len(got) < 18:
            b = s.recv(18 - len(got))
            if not b:
                raise SystemExit("a connection closed")
            got += b
    ready.set()
    done.wait()


def storm(port: int, rate: int, seconds: float, done: mp.Event) -> None:
    """rate new connections a second, each handshaking and closing."""
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds and not done.is_set():
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(handshake(port, 10**6 + n))
        s.close()
        n += 1
        ahead = n / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    print(f"storm: {n} connections in {time.monotonic() - start:.1f} s", flush=True)


def stream(tx: chirp.Node, port: int, seconds: float) -> float:
    """Messages a second, synchronous, 64 B, a window of 64 sends."""
    data = b"x" * 64
    futs: list = []
    n = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        futs.append(tx.send_async(("127.0.0.1", port), data))
        if len(futs) >= 64:
            futs.pop(0).result(timeout=30)
        n += 1
    for f in futs:
        f.result(timeout=30)
    return n / (time.monotonic() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--storm", type=int, default=1000, help="new connections a second")
    args = p.parse_args()
    limit = args.connections + 4096
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    node = subprocess.Popen([sys.executable, "-c", NODE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert node.stdin is not None and node.stdout is not None

    def ask() -> tuple[int, int, int]:
        node.stdin.write("rss\n")
        node.stdin.flush()
        rss, ready, count = node.stdout.readline().split()
        return int(rss), int(ready), int(count)

    port = int(node.stdout.readline())
    time.sleep(0.5)
    rss0, _, _ = ask()
    done = mp.Event()
    per = args.connections // args.processes
    holders = []
    t0 = time.monotonic()
    for k in range(args.processes):
        ready = mp.Event()
        h = mp.Process(target=holder, args=(port, per, k * per, ready, done))
        h.start()
        holders.append((h, ready))
    for _, ready in holders:
        if not ready.wait(300):
            raise SystemExit("the holders did not connect within 300 s")
    took = time.monotonic() - t0
    time.sleep(1.0)
    rss1, conns, _ = ask()
    total = per * args.processes
    print(f"{total} connections held ({conns} ready at the node) in {took:.1f} s")
    print(f"node RSS {rss0 / 1024:.1f} MiB -> {rss1 / 1024:.1f} MiB: "
          f"{(rss1 - rss0) / total:.1f} KiB per connection")  # fmt: skip
    with chirp.Node(port=0, synchronous=True, disable_encryption=True, timeout=30) as tx:
        fut = tx.send_async(("127.0.0.1", port), b"through")
        fut.result(timeout=30)
        print("a chirp sender's message got through while they were held")
        done.set()
        for h, _ in holders:
            h.join(60)
        time.sleep(2.0)
        alone = stream(tx, port, 3.0)
        sdone = mp.Event()
        st = mp.Process(target=storm, args=(port, args.storm, 3.5, sdone))
        st.start()
        time.sleep(0.25)
        during = stream(tx, port, 3.0)
        sdone.set()
        st.join(60)
    print(f"stream alone: {alone:,.0f} msg/s; during a storm of {args.storm}/s: "
          f"{during:,.0f} msg/s ({during / alone:.2f}x)")  # fmt: skip
    node.stdin.close()
    node.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
