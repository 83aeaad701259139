"""Idle TLS connections: probed (NOOP), then collected."""

import time

from tls.scenario import emit, err_info, expect_nothing, node, to


def run(p):
    """Idle TLS connections: after 3/4 of the reuse time a NOOP precedes the
    next message, after max(reuse_time, 3 x timeout) the connection is
    closed; messages keep arriving across both."""
    out = {"steps": []}
    kw = dict(timeout=0.4, reuse_time=1.0)  # connections idle out after 1.2 s
    with node(p, "a", synchronous=True, **kw) as a, node(p, "b", synchronous=False, **kw) as b:
        for i, pause in enumerate([0.0, 1.0, 2.0, 0.1]):
            time.sleep(pause)
            data = b"step %d" % i
            t0 = time.monotonic()
            fut = a.send_async(to(b), data, header=b"idle")
            try:
                m = b.recv(timeout=5)
                fut.result(timeout=5)
                ok = bytes(m.data) == data
                step = {"ok": ok, "secs": time.monotonic() - t0}
            except Exception as e:
                step = {"ok": False, "error": err_info(e)}
            out["steps"].append(step)
        out["nothing_else"] = expect_nothing(b, wait=0.2)
    emit(kind="result", **out)
