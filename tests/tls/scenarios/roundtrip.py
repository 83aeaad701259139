"""Two TLS nodes in one process: payload sizes, order, replies, requests."""

import threading
import time

from support.payloads import pattern

from tls.scenario import emit, node, results, to

SIZES = [0, 1, 100_000, 4 * 1024 * 1024]


def run(p):
    """Two TLS nodes in this process: payload sizes, order, replies, requests."""
    sync = p["synchronous"]
    count = p.get("count", 3000)
    out = {}
    with node(p, "a", synchronous=sync) as a, node(p, "b", synchronous=sync) as b:
        # payload sizes, with headers
        sizes = []
        for i, size in enumerate(SIZES):
            data = pattern(size, seed=i)
            header = b"hdr-%d" % size
            fut = a.send_async(to(b), data, header=header)
            m = b.recv(timeout=15)
            fut.result(timeout=15)
            sizes.append(
                {
                    "size": size,
                    "len": len(m.data),
                    "data_ok": bytes(m.data) == data,
                    "header_ok": bytes(m.header) == header,
                    "address": m.address,
                    "port": m.port,
                    "remote_identity_ok": m.remote_identity == a.identity,
                }
            )
        out["sizes"] = sizes
        out["a_port"] = a.port

        # a few thousand small messages, in order
        futs = [
            a.send_async(to(b), b"%08d" % i + pattern(40, i), header=b"n") for i in range(count)
        ]
        got = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            for m in b.recv_many(256, timeout=2):
                got.append(bytes(m.data))
        send_errors = len(results(futs))
        nums = [int(g[:8]) for g in got]
        out["many"] = {
            "sent": count,
            "received": len(got),
            "in_order": nums == list(range(count)),
            "intact": all(
                g == b"%08d" % i + pattern(40, i) for i, g in zip(nums, got, strict=False)
            ),
            "send_errors": send_errors,
        }

        # reply from the receiver, back over the same TLS connection
        fut = a.send_async(to(b), b"question", header=b"q")
        m = b.recv(timeout=10)
        rfut = b.reply_async(m, b"answer to " + bytes(m.data), header=b"r")
        r = a.recv(timeout=10)
        fut.result(timeout=10)
        rfut.result(timeout=10)
        out["reply"] = {
            "data": bytes(r.data).decode(),
            "header": bytes(r.header).decode(),
            "same_identity": r.identity == m.identity,
            "from_port": r.port,
            "b_port": b.port,
        }

        # request/response with a serving thread
        def serve(k):
            for _ in range(k):
                q = b.recv(timeout=10)
                b.reply(q, bytes(q.data)[::-1], header=bytes(q.header))

        th = threading.Thread(target=serve, args=(3,), daemon=True)
        th.start()
        reqs = []
        for i, size in enumerate([5, 100_000, 4 * 1024 * 1024]):
            data = pattern(size, seed=50 + i)
            ans = a.request(to(b), data, header=b"req%d" % i, timeout=15)
            reqs.append(
                {
                    "size": size,
                    "ok": bytes(ans.data) == data[::-1],
                    "header_ok": bytes(ans.header) == b"req%d" % i,
                }
            )
        th.join(timeout=10)
        out["requests"] = reqs
    emit(kind="result", **out)
