"""Raw TCP clients at a TLS node (in a namespace, so the node expects TLS):
garbage, half records, silence.  The connection is closed, nothing is
delivered, and the node keeps serving a good TLS peer.

The node runs with timeout=1.0, so its handshake timeout is
min(2 x 1.0, 60) = 2 s."""

import pytest

HANDSHAKE_TIMEOUT = 2.0


@pytest.mark.parametrize(
    "variant",
    ["http", "chirp_plain", "chirp_plain_high_port", "bad_record", "bad_type", "huge_record"],
)
def test_garbage_is_closed_at_once(scenario, variant):
    r = scenario("raw", variant=variant)
    assert r["closed"], f"the node kept the connection open: {r}"
    assert r["secs"] < 1.0, f"closed only after {r['secs']:.2f} s (a timeout, not a refusal): {r}"
    # At most a TLS alert (content type 0x15) comes back, never the node's
    # plaintext chirp handshake.
    assert r["replied"] == "" or r["replied"].startswith("15"), r
    assert r["nothing_delivered"], r
    assert r["good_after"], r


@pytest.mark.parametrize("variant", ["half_header_close", "short_record_close"])
def test_partial_record_then_close(scenario, variant):
    r = scenario("raw", variant=variant)
    assert r["nothing_delivered"], r
    assert r["good_after"], r


@pytest.mark.parametrize("variant", ["half_header_stall", "short_record_stall"])
def test_partial_record_then_silence_times_out(scenario, variant):
    r = scenario("raw", variant=variant)
    assert r["closed"], f"still open after {r['secs']:.2f} s: {r}"
    assert HANDSHAKE_TIMEOUT - 0.5 <= r["secs"] <= HANDSHAKE_TIMEOUT + 2.5, r
    assert r["replied"] == "" or r["replied"].startswith("15"), r
    assert r["nothing_delivered"], r
    assert r["good_after"], r


def test_silent_clients_time_out_and_do_not_block(scenario):
    r = scenario("raw", variant="silent")
    # a good peer is served while ten clients hang in the TLS handshake
    assert r["good_during"], r
    assert r["good_during_secs"] < 1.0, r
    # then all ten are closed by the handshake timeout
    assert r["closed"] and r["n_closed"] == 10, r
    assert r["min_secs"] >= HANDSHAKE_TIMEOUT - 0.5, r
    assert r["secs"] <= HANDSHAKE_TIMEOUT + 2.5, r
    assert r["replied"] == "", r
    assert r["nothing_delivered"], r
    assert r["good_after"], r
