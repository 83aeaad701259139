"""A plaintext sender at a TLS node."""

from tls.scenario import emit, expect_nothing, good_exchange, node, send_and_fail, to


def run(p):
    out = {}
    with (
        node(p, "b", synchronous=True) as b,
        node(p, None, synchronous=True, timeout=3.0, disable_encryption=True) as pt,
        node(p, "a", synchronous=False) as a,
    ):
        out["pt_to_b"] = send_and_fail(pt, to(b))
        out["b_got_nothing"] = expect_nothing(b)
        out["good_after"] = good_exchange(a, b)
        # and once more, while b has a live TLS connection to a
        out["pt_to_b_again"] = send_and_fail(pt, to(b))
        out["b_got_nothing_again"] = expect_nothing(b, wait=0.3)
        out["good_after_again"] = good_exchange(a, b, data=b"twice")
        out["b_to_a_ok"] = good_exchange(b, a, data=b"reverse")
    emit(kind="result", **out)
