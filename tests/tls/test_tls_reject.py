"""Peers that must not get through: a certificate from another CA, no
certificate, plaintext on either side.  The sender gets an exception,
nothing is delivered, and the node keeps serving good peers."""


def _is(err, name):
    return name in err["mro"]


def assert_rejected(res, error="ChirpError", within=2.0):
    """The send failed with ``error`` promptly (not by waiting out a timeout)."""
    assert res["failed"], f"the send succeeded: {res}"
    assert _is(res["error"], error), f"expected {error}, got {res['error']}"
    assert not _is(res["error"], "ChirpTimeoutError"), res
    assert res["elapsed"] < within, f"took {res['elapsed']:.2f} s: {res}"


def test_certificate_from_another_ca(scenario):
    r = scenario("reject_other_ca")
    for key in ("x_to_b", "b_to_x", "x_to_b_again"):
        assert_rejected(r[key], "TLSError")
        assert "certif" in r[key]["error"]["msg"], r[key]
    assert r["b_got_nothing"] and r["x_got_nothing"] and r["b_got_nothing_again"], r
    assert r["good_after"] and r["good_after_again"], r


def test_node_without_certificate(scenario):
    r = scenario("reject_no_cert")
    # Its sends to non-loopback peers fail with TLSError before connecting.
    for key in ("to_listener", "to_tls_node"):
        assert_rejected(r[key], "TLSError", within=1.0)
        assert "cert_chain_pem" in r[key]["error"]["msg"], r[key]
    assert r["listener_saw_connection"] is False, "it connected anyway"
    assert r["b_got_nothing"], r
    # A TLS node connecting to it is refused; nothing is delivered.
    assert_rejected(r["tls_to_no_cert"], "ChirpConnectionError")
    assert r["n_got_nothing"], r
    # Loopback is plaintext by protocol, so that still works.
    assert r["loopback_ok"], r
    assert r["good_after"], r


def test_plaintext_sender_to_tls_node(scenario):
    r = scenario("reject_plaintext_sender")
    assert_rejected(r["pt_to_b"], "ChirpError")
    assert_rejected(r["pt_to_b_again"], "ChirpError")
    assert r["b_got_nothing"] and r["b_got_nothing_again"], r
    assert r["good_after"] and r["good_after_again"] and r["b_to_a_ok"], r


def test_tls_sender_to_plaintext_node(scenario):
    r = scenario("reject_plaintext_receiver")
    assert_rejected(r["a_to_r"], "ChirpConnectionError")
    assert r["r_got_nothing"], r
    assert r["plain_after"], r


def test_tls_refusals_and_encrypted_connections_are_events(scenario):
    r = scenario("events")
    assert r["failed"]["failed"] and r["good"], r
    # b refused x's connection for its certificate, and says why
    refused = [e for e in r["b_events"] if e["kind"] == "refused"]
    assert refused and refused[0]["reason"] == "tls" and refused[0]["error"] == "CH_ETLS", r
    assert "TLS handshake failed: " in refused[0]["detail"], refused[0]  # OpenSSL's reason follows
    assert "unknown ca" in refused[0]["detail"] or "certif" in refused[0]["detail"], refused[0]
    assert not refused[0]["outgoing"] and refused[0]["encrypted"]
    x_refused = [e for e in r["x_events"] if e["kind"] == "refused"]
    assert x_refused and x_refused[0]["reason"] == "tls" and x_refused[0]["outgoing"], r
    assert "certificate verify failed" in x_refused[0]["detail"], x_refused[0]
    # a's connection to b: encrypted, with b's identity, then closed with the node
    connected = [e for e in r["a_events"] if e["kind"] == "connected"]
    assert connected and connected[0]["encrypted"] and connected[0]["port"] == r["b_port"], r
    assert connected[0]["identity"] is not None
    assert r["stats"]["a"]["tls_handshakes"] >= 1 and r["stats"]["b"]["tls_failures"] >= 1, r
    assert r["stats"]["b"]["connections_refused"] >= 1, r
    (peer,) = [p for p in r["peers"] if p["port"] == r["b_port"]]
    assert peer["connected"] and peer["encrypted"] and peer["sent"] == 1, peer
