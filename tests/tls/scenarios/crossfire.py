"""Both nodes start sending to each other at the same moment, so two TLS
connections race."""

import threading
import time

import chirp
from tls.scenario import emit, node, results, to


def run(p):
    """Both nodes start sending to each other at the same moment, so two
    TLS connections race; every message arrives, in order, without errors."""
    count = p.get("count", 500)
    out = {}
    kw = {"disable_encryption": True} if p.get("plaintext") else {}
    with (
        node(p, "a", synchronous=p["synchronous"], **kw) as a,
        node(p, "b", synchronous=p["synchronous"], **kw) as b,
    ):
        go = threading.Event()
        futs = {"a": [], "b": []}

        def blast(src, dst, key):
            go.wait(5)
            futs[key] = [
                src.send_async(to(dst), b"%s%06d" % (key.encode(), i)) for i in range(count)
            ]

        ths = [
            threading.Thread(target=blast, args=(a, b, "a")),
            threading.Thread(target=blast, args=(b, a, "b")),
        ]
        for t in ths:
            t.start()
        go.set()
        got_b = []
        got_a = []
        deadline = time.monotonic() + 30
        while (len(got_a) < count or len(got_b) < count) and time.monotonic() < deadline:
            for n, got in ((a, got_a), (b, got_b)):
                try:
                    got.extend(bytes(m.data) for m in n.recv_many(256, timeout=0.05))
                except chirp.ChirpTimeoutError:
                    pass
        for t in ths:
            t.join(5)
        out["a_errors"] = results(futs["a"])[:3]
        out["b_errors"] = results(futs["b"])[:3]
        out["b_got"] = len(got_b)
        out["a_got"] = len(got_a)
        out["b_in_order"] = got_b == [b"a%06d" % i for i in range(count)]
        out["a_in_order"] = got_a == [b"b%06d" % i for i in range(count)]
        out["b_complete"] = sorted(got_b) == [b"a%06d" % i for i in range(count)]
        out["a_complete"] = sorted(got_a) == [b"b%06d" % i for i in range(count)]
        # where the order breaks first, for the report
        for key, got in (("a", got_a), ("b", got_b)):
            nums = [int(g[1:]) for g in got]
            bad = [i for i in range(1, len(nums)) if nums[i] < nums[i - 1]]
            out[key + "_disorder"] = {
                "breaks": len(bad),
                "first": [nums[max(0, j - 2) : j + 2] for j in bad[:3]],
            }
    emit(kind="result", **out)
