"""A receiver with one slot that holds each message a moment: its
connection stops reading with ciphertext still buffered."""

import time

from support.payloads import pattern

import chirp
from tls.scenario import emit, node, results, to


def run(p):
    """A receiver with one slot that holds each message a moment: its
    connection stops reading with ciphertext still buffered, again and
    again, and goes on from there; every message arrives intact, in order."""
    sizes = (10, 20_000, 300, 300_000, 5)
    count = p.get("count", 120)
    out = {}
    with (
        node(p, "a", synchronous=False) as a,
        node(p, "b", synchronous=False, max_slots=1, auto_release=p["auto_release"]) as b,
    ):
        futs = [a.send_async(to(b), pattern(sizes[i % len(sizes)], seed=i)) for i in range(count)]
        ok = 0
        for i in range(count):
            try:
                m = b.recv(timeout=10)
            except chirp.ChirpTimeoutError:
                break
            if bytes(m.data) == pattern(sizes[i % len(sizes)], seed=i):
                ok += 1
            if i % 7 == 0:
                time.sleep(0.02)  # the sender fills TCP meanwhile
            m.release()
        out["intact_in_order"] = ok
        out["errors"] = results(futs)[:3]
    emit(kind="result", **out)
