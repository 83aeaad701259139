"""The receiver goes away and comes back on the same port."""

import time

from tls.scenario import ADDRESS, emit, err_info, good_exchange, node, send_and_fail, to


def run(p):
    """The receiver goes away and comes back on the same port: the sender
    gets an error meanwhile and then a fresh TLS connection works."""
    out = {}
    with node(p, "a", synchronous=True, timeout=2.0) as a:
        b = node(p, "b", synchronous=False)
        port = b.port
        try:
            fut = a.send_async(to(b), b"first")
            out["first"] = bytes(b.recv(timeout=5).data) == b"first"
            fut.result(timeout=5)
        finally:
            b.close()
        time.sleep(0.2)
        out["while_down"] = send_and_fail(a, (ADDRESS, port), timeout=10)
        with node(p, "b", synchronous=False, port=port) as b2:
            oks = []
            for i in range(3):
                fut = a.send_async(to(b2), b"again %d" % i)
                try:
                    m = b2.recv(timeout=5)
                    fut.result(timeout=5)
                    oks.append(bytes(m.data) == b"again %d" % i)
                except Exception as e:
                    oks.append(err_info(e))
            out["after_restart"] = oks
            # and the other way round, over the connection a just opened
            out["reverse"] = good_exchange(b2, a, data=b"back")
    emit(kind="result", **out)
