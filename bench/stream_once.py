"""One 64-byte asynchronous stream, for timing the whole process:

    python bench/stream_once.py post|async [COUNT]

Sends COUNT (default 200000) messages with Node.post() or with
Node.send_async() (keeping no Futures but the last) to a receiver in
another process, and exits once the receiver has them all.  Pair the two
modes with any timer of whole commands (e.g. /usr/bin/time, in turns)."""

from __future__ import annotations

import subprocess
import sys

import chirp

RECEIVER = """
import sys, chirp
n = int(sys.argv[1])
with chirp.Node(port=0, synchronous=False, disable_encryption=True) as node:
    print(node.port, flush=True)
    got = 0
    while got < n:
        got += len(node.recv_many(4096, timeout=30))
    print(got, flush=True)
"""


def main() -> int:
    mode = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    rx = subprocess.Popen([sys.executable, "-c", RECEIVER, str(count + 1)],
                          stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert rx.stdout is not None
    to = ("127.0.0.1", int(rx.stdout.readline()))
    payload = b"x" * 64
    with chirp.Node(port=0, synchronous=False, disable_encryption=True) as tx:
        tx.send(to, payload)  # connected, the address known
        if mode == "post":
            post = tx.post
            for _ in range(count):
                post(to, payload)
        else:
            send_async = tx.send_async
            for _ in range(count):
                last = send_async(to, payload)
            last.result(timeout=60)
        got = int(rx.stdout.readline())
    rx.wait(60)
    return 0 if got == count + 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
