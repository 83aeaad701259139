"""This process talks TLS to an echo node in another process (scenario
``echo``, in the opposite mode)."""

import json
import time

from support.child import Child, python
from support.payloads import pattern

import chirp
from tls.scenario import ADDRESS, emit, node, results

SIZES = [0, 1, 100_000, 4 * 1024 * 1024]


def record(child, kind, timeout):
    """The child's next JSON record of this kind."""
    return child.read_json(timeout, lambda r: r.get("kind") == kind, f"a {kind!r} record")


def run(p):
    """This process talks TLS to an echo peer in another process."""
    sync = p["synchronous"]
    count = p.get("count", 2000)
    params = {**p, "name": "b", "synchronous": not sync}
    child = Child(
        python("tls.scenario", "echo", json.dumps(params)),
        name="echo scenario",
        stdin=True,
        stderr="inherit",
    )
    out = {}
    try:
        ready = record(child, "ready", 15)
        dest = (ADDRESS, ready["port"])
        with node(p, "a", synchronous=sync) as a:
            # requests of every size: the echo must come back intact
            reqs = []
            for i, size in enumerate(SIZES):
                data = pattern(size, seed=100 + i)
                header = b"two-%d" % size
                ans = a.request(dest, data, header=header, timeout=15)
                reqs.append(
                    {
                        "size": size,
                        "data_ok": bytes(ans.data) == data,
                        "header_ok": bytes(ans.header) == header,
                        "len": len(ans.data),
                        "remote_identity_ok": ans.remote_identity.hex() == ready["identity"],
                        "address": ans.address,
                    }
                )
            out["requests"] = reqs

            # blocking send (the echo peer answers; we drain the answers)
            a.send(dest, b"blocking", header=b"bl")
            ans = a.recv(timeout=10)
            out["blocking_send_echo"] = bytes(ans.data).decode()

            # many numbered messages; the echoes come back in order
            futs = [a.send_async(dest, b"%08d" % i, header=b"m") for i in range(count)]
            got = []
            deadline = time.monotonic() + 30
            while len(got) < count and time.monotonic() < deadline:
                try:
                    got.extend(bytes(m.data) for m in a.recv_many(256, timeout=2))
                except chirp.ChirpTimeoutError:
                    break
            errs = len(results(futs))
            out["many"] = {
                "sent": count,
                "received": len(got),
                "in_order": got == [b"%08d" % i for i in range(count)],
                "send_errors": errs,
            }
        child.close_stdin()  # the echo node finishes
        out["peer"] = record(child, "done", 15)
    finally:
        child.kill()
    emit(kind="result", **out)
