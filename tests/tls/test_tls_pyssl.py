"""Python's ssl module as a raw TLS client of a chirp node: TLS 1.2 with a
DHE cipher (served by dh_params_pem), TLS 1.3, and clients that must be
refused (TLS 1.1, no client certificate, a certificate from another CA).
After a good handshake the wire protocol runs inside TLS: the node's
18-byte chirp handshake comes first, then its capability frame, and our
handshake and messages reach the node."""

import pytest
from support import wire


@pytest.mark.parametrize("variant", ["tls12_dhe", "tls13"])
def test_tls_client_speaks_chirp(scenario, variant):
    r = scenario("pyssl", variant=variant)
    if variant == "tls12_dhe":
        assert r["version"] == "TLSv1.2", r
        assert r["cipher"] == "DHE-RSA-AES128-GCM-SHA256", r
    else:
        assert r["version"] == "TLSv1.3", r
    # the node's chirp handshake, inside TLS
    assert r["hs_port_ok"] and r["hs_identity_ok"], r
    # our handshake + message reach the node intact
    d = r["delivered"]
    assert d["data_ok"] and d["header_ok"], d
    assert d["identity_ok"] and d["remote_identity_ok"], d
    assert d["port"] == 4321, d  # the port from our handshake, not the TCP port
    # the node's capability frame (version 1, its window of 16), inside TLS
    assert r["capability"] == [1, wire.CAP_REJECT, 64], r
    # a REQ_ACK message is acknowledged (type ACK, no payload, same identity)
    assert r["second_ok"], r
    assert r["ack"] == {"identity_ok": True, "type": 2, "len": 0}, r
    assert r["nothing_else_delivered"], r
    assert r["good_after"], r


def test_tls11_client_is_refused(scenario):
    r = scenario("pyssl", variant="tls11")
    assert r["client_handshake_done"] is False, r
    msg = r["error"]["msg"]
    # the refusal came from the node (a protocol_version alert), not from
    # the local OpenSSL declining to offer TLS 1.1
    assert "NO_PROTOCOLS_AVAILABLE" not in msg, msg
    assert "PROTOCOL_VERSION" in msg.upper() or "UNSUPPORTED_PROTOCOL" in msg.upper(), msg
    assert r["nothing_else_delivered"], r
    assert r["good_after"], r


@pytest.mark.parametrize("variant", ["no_client_cert", "other_ca_client"])
def test_client_certificate_is_required(scenario, variant):
    """Mutual TLS: the node refuses a client without a (trusted) certificate
    and never sends it the chirp handshake."""
    r = scenario("pyssl", variant=variant)
    assert r.get("got_chirp_handshake") is not True, r
    # refused with an alert (certificate required / unknown CA) or at least
    # a closed connection, quickly
    assert "error" in r, r
    assert set(r["error"]["mro"]) & {"SSLError", "ConnectionError"}, r
    assert r["secs"] < 2.0, r
    assert r["nothing_else_delivered"], r
    assert r["good_after"], r
