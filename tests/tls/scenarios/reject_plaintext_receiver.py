"""A TLS sender at a plaintext node."""

from tls.scenario import emit, expect_nothing, good_exchange, node, send_and_fail, to


def run(p):
    out = {}
    with (
        node(p, None, synchronous=False, disable_encryption=True) as r,
        node(p, "a", synchronous=True, timeout=3.0) as a,
        node(p, None, synchronous=False, disable_encryption=True) as q,
    ):
        out["a_to_r"] = send_and_fail(a, to(r))
        out["r_got_nothing"] = expect_nothing(r)
        # the plaintext receiver still serves a plaintext peer
        out["plain_after"] = good_exchange(q, r)
    emit(kind="result", **out)
