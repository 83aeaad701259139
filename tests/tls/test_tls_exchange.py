"""chirp <-> chirp over TLS: payload sizes, headers, order, replies,
requests; in one process and across two processes (in a namespace, so both
sides see a non-loopback address and must use TLS)."""

import pytest
from support.netns import ADDRESS

SIZES = [0, 1, 100_000, 4 * 1024 * 1024]


def _mode(sync):
    return "sync" if sync else "async"


@pytest.mark.parametrize("sync", [True, False], ids=_mode)
def test_one_process_exchange(scenario, sync):
    r = scenario("roundtrip", synchronous=sync, count=3000)

    assert [s["size"] for s in r["sizes"]] == SIZES, r
    for s in r["sizes"]:
        assert s["len"] == s["size"], s
        assert s["data_ok"] and s["header_ok"], s
        # The message says where it came from: the sender's listening port
        # from its (encrypted) chirp handshake, and its identity.
        assert s["address"] == ADDRESS, s
        assert s["port"] == r["a_port"], s
        assert s["remote_identity_ok"], s

    many = r["many"]
    assert many["send_errors"] == 0, many
    assert many["received"] == many["sent"] == 3000, many
    assert many["in_order"] and many["intact"], many

    rep = r["reply"]
    assert rep["data"] == "answer to question" and rep["header"] == "r", rep
    assert rep["same_identity"], rep
    assert rep["from_port"] == rep["b_port"], rep

    assert [q["size"] for q in r["requests"]] == [5, 100_000, 4 * 1024 * 1024]
    for q in r["requests"]:
        assert q["ok"] and q["header_ok"], q


@pytest.mark.parametrize("sync", [True, False], ids=_mode)
def test_two_processes_exchange(scenario, sync):
    """A node here and an echo node in another process (opposite mode)."""
    r = scenario("twoproc", synchronous=sync, count=2000)

    assert [q["size"] for q in r["requests"]] == SIZES, r
    for q in r["requests"]:
        assert q["len"] == q["size"], q
        assert q["data_ok"] and q["header_ok"], q
        assert q["remote_identity_ok"], q
        assert q["address"] == ADDRESS, q

    assert r["blocking_send_echo"] == "blocking"

    many = r["many"]
    assert many["send_errors"] == 0, many
    assert many["received"] == many["sent"] == 2000, many
    assert many["in_order"], many

    peer = r["peer"]
    assert peer["n_errors"] == 0, peer
    # 4 requests + 1 blocking send + the numbered messages
    assert peer["received"] == len(SIZES) + 1 + 2000, peer


def test_wire_is_encrypted(scenario):
    """Through a forwarding tap: nothing of the message, the answer or the
    node identities is visible, and the bytes are TLS records."""
    r = scenario("wiretap", plaintext=False)
    assert r["delivered"] and r["answered"], r
    assert r["up_len"] > 200 and r["down_len"] > 0, r
    assert not r["payload_visible"], r
    assert not r["header_visible"], r
    assert not r["answer_visible"], r
    assert not r["identity_visible"], r
    assert r["up_head"].startswith("1603"), r  # a TLS handshake record
    assert r["down_head"].startswith("1603"), r


def test_wiretap_control_sees_plaintext(scenario):
    """The control for the test above: with encryption disabled the tap does
    see everything, so its 'not visible' really means encrypted."""
    r = scenario("wiretap", plaintext=True)
    assert r["delivered"] and r["answered"], r
    assert r["payload_visible"] and r["header_visible"], r
    assert r["answer_visible"] and r["identity_visible"], r


@pytest.mark.parametrize("auto_release", [False, True], ids=["held", "auto"])
def test_reading_stops_and_resumes_with_ciphertext_buffered(scenario, auto_release):
    """One slot, a receiver that lingers: the connection stops reading
    while undecrypted input waits in its buffer, and resumes from it."""
    r = scenario("stall", auto_release=auto_release, count=120)
    assert r["errors"] == [], r
    assert r["intact_in_order"] == 120, r


@pytest.mark.parametrize("sync", [True, False], ids=_mode)
def test_asyncio_methods_across_processes(scenario, sync):
    """arequest, asend, arecv_many, async for and areply over TLS, with an
    echo node and a requesting node in two other processes (opposite
    mode)."""
    r = scenario("aio", synchronous=sync, count=1000)

    assert [q["size"] for q in r["requests"]] == SIZES, r
    for q in r["requests"]:
        assert q["ok"] and q["identity_ok"], q
        assert q["address"] == ADDRESS, q

    stream = r["stream"]
    assert stream["send_results_none"], stream
    assert stream["received"] == 1000 and stream["in_order"], stream

    asker = r["asker"]
    assert asker["n_errors"] == 0, asker
    assert asker["answers"] == [[i, "re:ask"] for i in range(50)], asker

    peer = r["peer"]
    assert peer["n_errors"] == 0, peer
    assert peer["received"] == len(SIZES) + 1000, peer
