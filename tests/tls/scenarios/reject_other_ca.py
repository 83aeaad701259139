"""A node with a certificate from another CA, both ways."""

from tls.scenario import emit, expect_nothing, good_exchange, node, send_and_fail, to


def run(p):
    other = p["other"]
    out = {}
    with (
        node(p, "b", synchronous=True, timeout=3.0) as b,
        node(other, "x", synchronous=True, timeout=3.0) as x,
        node(p, "a", synchronous=False) as a,
    ):
        out["x_to_b"] = send_and_fail(x, to(b))
        out["b_got_nothing"] = expect_nothing(b)
        out["b_to_x"] = send_and_fail(b, to(x))
        out["x_got_nothing"] = expect_nothing(x, wait=0.2)
        out["good_after"] = good_exchange(a, b)
        # the same rejected node again: still rejected, no stale state
        out["x_to_b_again"] = send_and_fail(x, to(b))
        out["b_got_nothing_again"] = expect_nothing(b, wait=0.3)
        out["good_after_again"] = good_exchange(a, b, data=b"again")
    emit(kind="result", **out)
