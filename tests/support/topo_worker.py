"""A worker process of the topology tests (tests/test_rule_of_thumb.py):

    python -m support.topo_worker PORT [--sync] [--slots N] [--cert PEM] [--slow S]

An asynchronous (or, with --sync, synchronous) node on PORT serving with
2 threads.  For each message it prints ``GOT <data hex>`` (flushed)
before the handler returns, so what it printed was processed before the
message was released.  Data starting with ``poison`` raises (the message
is rejected); ``slow`` sleeps 0.3 s (--slow) first; data starting with ``request``
is answered with ``re:`` + data (the others get no answer: a producer
that sends without reading would hold the answer unread, and its send
would wait for an acknowledgement that comes only after it).
Prints ``READY <port>`` once it listens, and ``STATS <json>`` (its
counters and max_memory) when SIGTERM ends it."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

import chirp


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--sync", action="store_true")
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--cert", help="TLS: the node's certificate chain (else plaintext)")
    p.add_argument("--slow", type=float, default=0.3, help="seconds a 'slow' message takes")
    args = p.parse_args()

    def handler(msg: chirp.Message) -> bytes | None:
        if msg.data.startswith(b"slow"):
            time.sleep(args.slow)
        if msg.data.startswith(b"poison"):
            raise ValueError("poison")
        sys.stdout.write(f"GOT {msg.data.hex()}\n")
        sys.stdout.flush()
        return b"re:" + msg.data if msg.data.startswith(b"request") else None

    node = chirp.Node(
        port=args.port,
        bind_v6="",
        disable_encryption=args.cert is None,
        cert_chain_pem=args.cert,
        synchronous=args.sync,
        max_slots=args.slots,
        timeout=2.0,
    )
    signal.signal(signal.SIGTERM, lambda *_: node.stop())
    print(f"READY {node.port}", flush=True)
    node.serve(handler, workers=2)
    stats = node.stats()
    stats["max_memory"] = node.config.max_memory
    print(f"STATS {json.dumps(stats)}", flush=True)
    node.close(linger=0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
