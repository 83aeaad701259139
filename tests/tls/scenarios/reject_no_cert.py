"""A node without a certificate."""

import socket

from tls.scenario import (
    ADDRESS,
    emit,
    err_info,
    expect_nothing,
    good_exchange,
    node,
    send_and_fail,
    to,
)


def run(p):
    out = {}
    lst = socket.socket()
    lst.bind(("0.0.0.0", 0))
    lst.listen(8)
    lst.settimeout(0.3)
    try:
        with (
            node(p, None, synchronous=True, timeout=5.0) as n,
            node(p, "b", synchronous=False, timeout=5.0) as b,
            node(p, "a", synchronous=False) as a,
        ):
            # to a plain listening socket: must fail without even connecting
            out["to_listener"] = send_and_fail(n, (ADDRESS, lst.getsockname()[1]))
            try:
                c, peer = lst.accept()
                c.close()
                out["listener_saw_connection"] = True
            except TimeoutError:
                out["listener_saw_connection"] = False
            # to a TLS node
            out["to_tls_node"] = send_and_fail(n, to(b))
            out["b_got_nothing"] = expect_nothing(b, wait=0.3)
            # a TLS node connecting to the node without certificate
            out["tls_to_no_cert"] = send_and_fail(b, to(n), timeout=10)
            out["n_got_nothing"] = expect_nothing(n, wait=0.3)
            # loopback stays plaintext, so that still works without certificate
            fut = n.send_async(("127.0.0.1", b.port), b"over loopback", header=b"lo")
            try:
                m = b.recv(timeout=5)
                fut.result(timeout=5)
                out["loopback_ok"] = bytes(m.data) == b"over loopback"
            except Exception as e:
                out["loopback_ok"] = False
                out["loopback_error"] = err_info(e)
            out["good_after"] = good_exchange(a, b)
    finally:
        lst.close()
    emit(kind="result", **out)
