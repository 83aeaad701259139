"""chirp <-> libchirp 1.2.1 interoperability.

libchirp runs as a black-box peer in its own process (libchirp_peer.py, from
the venv made by setup_libchirp.sh); chirp is used through its public API.
All traffic is plaintext on 127.0.0.1 (loopback is never encrypted).

Run:  python -m pytest -q tests/interop
"""

import threading

import pytest
from support import raw, wire
from support.net import LOCAL
from support.payloads import digest_payload, sha256

import chirp

MIB = 1 << 20

# (chirp synchronous, libchirp synchronous)
MODES = [(True, True), (True, False), (False, True), (False, False)]
MODE_IDS = [
    "chirp_sync-lc_sync",
    "chirp_sync-lc_async",
    "chirp_async-lc_sync",
    "chirp_async-lc_async",
]
modes = pytest.mark.parametrize("chirp_sync,lc_sync", MODES, ids=MODE_IDS)

# (data size, header size) of the messages in the mixed-size tests.
MIXED = [
    (0, 0),
    (1, 0),
    (0, 5),
    (100, 7),
    (4096, 0),
    (65536, 300),
    (10, 65535),
    (MIB, 0),
    (MIB, 1000),
    (0, 0),
]


def mixed_messages():
    return [
        (digest_payload(i, d, b"D"), digest_payload(i, h, b"H")) for i, (d, h) in enumerate(MIXED)
    ]


def check_recv_event(ev, data, header, node):
    assert ev["len"] == len(data), ev
    assert ev["sha256"] == sha256(data), f"data corrupted: {ev}"
    assert ev["header_hex"] == header.hex(), f"header corrupted: {ev}"
    assert ev["address"] == LOCAL, ev
    assert ev["port"] == node.port, f"port must be the sender's listening port: {ev}"
    assert ev["remote_identity"] == node.identity.hex(), ev


# -- chirp -> libchirp ----------------------------------------------------------------


@modes
def test_chirp_send_to_libchirp_sink(node_factory, libchirp_peer, chirp_sync, lc_sync):
    msgs = mixed_messages()
    peer = libchirp_peer("sink", "--count", len(msgs), "--wait", 60, synchronous=lc_sync)
    node = node_factory(synchronous=chirp_sync)
    assert isinstance(node.identity, bytes) and len(node.identity) == 16
    for data, header in msgs:
        node.send((LOCAL, peer.port), data, header=header)
    evs = peer.events(len(msgs), "recv", timeout=30)
    for ev, (data, header) in zip(evs, msgs, strict=False):
        check_recv_event(ev, data, header, node)
    # One connection, messages written in order: they arrive in order.
    serials = [ev["serial"] for ev in evs]
    assert serials == sorted(serials), serials
    assert len({ev["identity"] for ev in evs}) == len(evs), "message identities repeat"
    done = peer.event(kind="done", timeout=10)
    assert done["ok"], done
    assert peer.wait(20) == 0, peer.describe()


@modes
def test_chirp_send_async_concurrent_to_libchirp_sink(
    node_factory, libchirp_peer, chirp_sync, lc_sync
):
    n = 60
    msgs = [
        (digest_payload(i, 64 + i * 97, b"D"), digest_payload(i, i % 11, b"H")) for i in range(n)
    ]
    peer = libchirp_peer("sink", "--count", n, "--wait", 60, synchronous=lc_sync)
    node = node_factory(synchronous=chirp_sync)
    futs = [node.send_async((LOCAL, peer.port), d, header=h) for d, h in msgs]
    for f in futs:
        f.result(timeout=30)
    evs = peer.events(n, "recv", timeout=30)
    want = sorted((sha256(d), h.hex()) for d, h in msgs)
    got = sorted((ev["sha256"], ev["header_hex"]) for ev in evs)
    assert got == want
    for ev in evs:
        assert ev["port"] == node.port and ev["remote_identity"] == node.identity.hex()
    assert peer.wait(20) == 0, peer.describe()


@pytest.mark.parametrize("lc_sync", [True, False], ids=["lc_sync", "lc_async"])
def test_libchirp_accepts_and_ignores_the_capability_frame(libchirp_peer, lc_sync):
    """What a chirp node writes first (its handshake, then the capability
    frame), written by hand to libchirp 1.2.1, then three messages: every
    message is delivered (the frame is not), each one asking for an ACK is
    acknowledged, and the connection stays open.  (Every other interop test
    runs over connections that start with the frame too, TLS included.)"""
    # It waits for a fourth message, so it is still there (and the
    # connection open) when the test looks.
    peer = libchirp_peer("sink", "--count", 4, "--wait", 30, synchronous=lc_sync)
    s = raw.connect(peer.port)
    try:
        s.sendall(wire.handshake(40999, b"C" * 16) + wire.capability(1, 16))
        port, _ = wire.decode_handshake(raw.recv_exact(s, wire.HANDSHAKE_SIZE))
        assert port == peer.port
        for i in range(3):
            mid = wire.new_identity()
            s.sendall(wire.message(mid, i + 2, b"m%d" % i, b"", wire.REQ_ACK if lc_sync else 0))
            if lc_sync:
                ack = raw.read_header(s, timeout=10)
                assert (ack.type, ack.identity) == (wire.ACK, mid)
        events = peer.events(3, "recv")
        assert [bytes.fromhex(e["data_hex"]) for e in events] == [b"m0", b"m1", b"m2"]
        assert all(e["remote_identity"] == (b"C" * 16).hex() for e in events)
        assert not raw.is_closed_now(s)
    finally:
        s.close()


def test_chirp_identity_seen_by_libchirp(node_factory, libchirp_peer):
    ident = bytes(range(100, 116))
    peer = libchirp_peer("sink", "--count", 1, "--wait", 30)
    node = node_factory(identity=ident)
    assert node.identity == ident
    node.send((LOCAL, peer.port), b"who", header=b"")
    ev = peer.event(kind="recv")
    assert ev["remote_identity"] == ident.hex()
    assert ev["data_hex"] == b"who".hex()


@modes
@pytest.mark.parametrize(
    "size,hsize",
    [(0, 0), (100, 7), (MIB, 0), (MIB, 512)],
    ids=["empty", "small", "1MiB", "1MiB+header"],
)
def test_chirp_request_to_libchirp_echo(
    node_factory, libchirp_peer, chirp_sync, lc_sync, size, hsize
):
    n = 3 if size >= MIB else 10
    peer = libchirp_peer("echo", synchronous=lc_sync)
    node = node_factory(synchronous=chirp_sync)
    for i in range(n):
        data, header = digest_payload(i, size, b"D"), digest_payload(i, hsize, b"H")
        ans = node.request((LOCAL, peer.port), data, header=header, timeout=10.0)
        assert len(ans.data) == len(data)
        assert ans.data == data, "reply data differs (i=%d)" % i
        assert ans.header == header, "reply header differs (i=%d)" % i
        assert ans.port == peer.port
        assert ans.address == LOCAL
        assert ans.remote_identity == peer.identity
        ev = peer.event(kind="echo", timeout=15)
        assert "send_error" not in ev, ev
        check_recv_event(ev, data, header, node)
        # A reply keeps the identity of the request.
        assert ans.identity.hex() == ev["identity"], (ans.identity.hex(), ev)


@modes
def test_chirp_request_async_concurrent_to_libchirp_echo(
    node_factory, libchirp_peer, chirp_sync, lc_sync
):
    n = 40
    peer = libchirp_peer("echo", synchronous=lc_sync)
    node = node_factory(synchronous=chirp_sync)
    sent = [
        (digest_payload(i, 1 + i * 131, b"D"), digest_payload(i, i % 5, b"H")) for i in range(n)
    ]
    futs = [node.request_async((LOCAL, peer.port), d, header=h) for d, h in sent]
    answers = [f.result(timeout=30) for f in futs]
    for (data, header), ans in zip(sent, answers, strict=False):
        assert ans.data == data and ans.header == header
        assert ans.remote_identity == peer.identity
    evs = peer.events(n, "echo", timeout=30)
    assert not [ev for ev in evs if "send_error" in ev], evs
    assert sorted(ev["identity"] for ev in evs) == sorted(a.identity.hex() for a in answers)


def test_chirp_mixed_sizes_request_to_libchirp_echo(node_factory, libchirp_peer):
    peer = libchirp_peer("echo", synchronous=True)
    node = node_factory(synchronous=True)
    for i, (data, header) in enumerate(mixed_messages()):
        ans = node.request((LOCAL, peer.port), data, header=header, timeout=10.0)
        assert ans.data == data and ans.header == header, "i=%d" % i


# -- libchirp -> chirp ----------------------------------------------------------------


@modes
@pytest.mark.parametrize(
    "size,hsize",
    [(0, 0), (100, 7), (MIB, 0), (10, 65535)],
    ids=["empty", "small", "1MiB", "64KiB-header"],
)
def test_libchirp_send_to_chirp(node_factory, libchirp_peer, chirp_sync, lc_sync, size, hsize):
    n = 4 if size >= MIB else 20
    node = node_factory(synchronous=chirp_sync)
    peer = libchirp_peer(
        "send",
        "--target",
        "%s:%d" % (LOCAL, node.port),
        "--count",
        n,
        "--size",
        size,
        "--header-size",
        hsize,
        "--wait",
        30,
        synchronous=lc_sync,
    )
    got = [node.recv(timeout=20.0) for _ in range(n)]
    res = peer.event(kind="result", timeout=40)
    assert res["ok"] == n and res["failed"] == 0, res["errors"]
    sent_ids = [m["identity"] for m in res["messages"]]
    # One connection: same order as sent.
    assert [m.identity.hex() for m in got] == sent_ids
    for i, m in enumerate(got):
        assert m.data == digest_payload(i, size, b"D"), "data corrupted (i=%d)" % i
        assert m.header == digest_payload(i, hsize, b"H"), "header corrupted (i=%d)" % i
        assert m.address == LOCAL
        assert m.port == peer.port, "port must come from libchirp's handshake"
        assert m.remote_identity == peer.identity
        assert isinstance(m.serial, int)
    serials = [m.serial for m in got]
    assert serials == sorted(serials), serials
    assert peer.wait(20) == 0, peer.describe()


@pytest.mark.parametrize(
    "chirp_sync,lc_sync,auto_release",
    [
        (cs, ls, ar)
        for cs, ls in MODES
        for ar in (True, False)
        # A synchronous node that replies while holding the request's slot waits
        # for the reply's ACK on a connection it has stopped reading (libchirp
        # behaves the same): consumers run asynchronous (docs/architecture.md).
        if not (cs and not ar)
    ],
    ids=lambda v: str(v),
)
@pytest.mark.parametrize(
    "size,hsize", [(0, 0), (100, 7), (MIB, 64)], ids=["empty", "small", "1MiB"]
)
def test_libchirp_request_chirp_reply(
    node_factory, libchirp_peer, chirp_sync, lc_sync, auto_release, size, hsize
):
    # An asynchronous libchirp sender pipelines all requests; a synchronous
    # chirp node replying one by one (each reply waits for its ACK) only gets
    # that ACK if the requests still queued fit in its slots: keep n small.
    n = 3 if size >= MIB else 12
    node = node_factory(synchronous=chirp_sync, auto_release=auto_release)
    peer = libchirp_peer(
        "send",
        "--target",
        "%s:%d" % (LOCAL, node.port),
        "--count",
        n,
        "--size",
        size,
        "--header-size",
        hsize,
        "--expect-reply",
        "--wait",
        30,
        synchronous=lc_sync,
    )
    for _ in range(n):
        msg = node.recv(timeout=20.0)
        assert msg.port == peer.port and msg.remote_identity == peer.identity
        node.reply(msg, msg.data, header=msg.header)
        if not auto_release:
            msg.release()
            msg.release()  # idempotent
    res = peer.event(kind="result", timeout=40)
    assert res["failed"] == 0, res["errors"]
    assert res["all_match"], res["replies"]
    assert len(res["replies"]) == n
    for rep in res["replies"]:
        assert rep["port"] == node.port
        assert rep["remote_identity"] == node.identity.hex()
        assert rep["address"] == LOCAL
    assert res["unexpected"] == []
    assert peer.wait(20) == 0, peer.describe()


def test_libchirp_request_chirp_reply_different_data(node_factory, libchirp_peer):
    """The reply carries new data and header but the request's identity."""
    node = node_factory(synchronous=False)
    peer = libchirp_peer(
        "send",
        "--target",
        "%s:%d" % (LOCAL, node.port),
        "--count",
        1,
        "--data-hex",
        b"question".hex(),
        "--header-hex",
        b"hq".hex(),
        "--expect-reply",
        "--wait",
        20,
        synchronous=True,
    )
    msg = node.recv(timeout=20.0)
    assert msg.data == b"question" and msg.header == b"hq"
    node.reply(msg, b"answer!", header=b"ha")
    res = peer.event(kind="result", timeout=30)
    # The peer checks for an echo, so the data differ; identity must match.
    assert res["ok"] == 1, res["errors"]
    rep = res["replies"][0]
    assert rep["identity"] == msg.identity.hex() == res["messages"][0]["identity"]
    assert rep["data_hex"] == b"answer!".hex() and rep["header_hex"] == b"ha".hex()
    assert peer.wait(20) == 1  # "not all replies match" is expected here


# -- both directions at once ----------------------------------------------------------


@pytest.mark.parametrize(
    "chirp_sync,lc_sync",
    # Not (chirp sync, libchirp async): the asynchronous libchirp sender
    # pipelines all 20 requests, they fill the synchronous chirp node's slots
    # while its serving thread waits for the ACK of a reply, and that ACK is
    # queued behind them on a connection the node has stopped reading. The
    # protocol deadlocks there by design (libchirp <-> libchirp too):
    # consumers run asynchronous (docs/architecture.md).
    [m for m in MODES if m != (True, False)],
    ids=[i for m, i in zip(MODES, MODE_IDS, strict=False) if m != (True, False)],
)
def test_both_directions_at_once(node_factory, libchirp_peer, chirp_sync, lc_sync):
    """chirp requests a libchirp echo while a libchirp sender requests chirp."""
    node = node_factory(synchronous=chirp_sync)
    echo = libchirp_peer("echo", synchronous=lc_sync)
    n = 20
    sender = libchirp_peer(
        "send",
        "--target",
        "%s:%d" % (LOCAL, node.port),
        "--count",
        n,
        "--size",
        3000,
        "--header-size",
        3,
        "--expect-reply",
        "--wait",
        40,
        synchronous=lc_sync,
    )
    errors = []

    def serve():
        try:
            for _ in range(n):
                m = node.recv(timeout=20.0)
                node.reply(m, m.data, header=m.header)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    futs = [
        node.request_async((LOCAL, echo.port), digest_payload(i, 2000, b"D"), header=b"h%d" % i)
        for i in range(n)
    ]
    for i, f in enumerate(futs):
        ans = f.result(timeout=30)
        assert ans.data == digest_payload(i, 2000, b"D") and ans.header == b"h%d" % i
    t.join(timeout=40)
    assert not t.is_alive(), "serving thread hung"
    assert not errors, errors
    res = sender.event(kind="result", timeout=40)
    assert res["failed"] == 0 and res["all_match"], res["errors"]


# -- failures --------------------------------------------------------------------------


def test_send_to_stopped_libchirp_peer_fails(node_factory, libchirp_peer):
    peer = libchirp_peer("sink", "--count", 1, "--wait", 30)
    node = node_factory(synchronous=True, timeout=2.0)
    node.send((LOCAL, peer.port), b"first", header=b"")
    assert peer.event(kind="recv")["data_hex"] == b"first".hex()
    assert peer.wait(20) == 0
    with pytest.raises(chirp.ChirpError) as info:
        # The old connection is gone; either the write fails on it or a new
        # connect is refused. Either way an error, within the timeouts.
        for _ in range(3):
            node.send((LOCAL, peer.port), b"second", header=b"")
    assert isinstance(
        info.value, (chirp.ChirpConnectionError, chirp.ChirpTimeoutError, chirp.ProtocolError)
    ), repr(info.value)


def test_a_rejected_message_from_libchirp_is_not_acknowledged(node_factory, libchirp_peer):
    """libchirp has no reject frame: the message it sent is not
    acknowledged and its connection closes, so its synchronous send fails
    with an error of its own; the messages before and after go through."""
    events = []
    node = node_factory(synchronous=False, auto_release=False, on_event=events.append)
    peer = libchirp_peer(
        "send", "--target", "%s:%d" % (LOCAL, node.port), "--count", 3, "--wait", 30
    )
    verdicts = []
    for i in range(3):
        msg = node.recv(timeout=20.0)
        if i == 1:
            msg.reject("not this one")
            verdicts.append("rejected")
        else:
            msg.release()
            verdicts.append("released")
    res = peer.event(kind="result", timeout=40)
    assert res["ok"] == 2 and res["failed"] == 1, res
    assert verdicts == ["released", "rejected", "released"]
    cut = [e for e in events if e.kind == "disconnected" and e.error == "CH_EREJECTED"]
    assert cut and "the peer cannot read why (not this one)" in cut[0].detail, events
    # libchirp 1.2.1 reports the closed connection as its own error
    assert [m["ok"] for m in res["messages"]] == [True, False, True], res
    assert peer.wait(20) == 1, peer.describe()  # its exit code when a send failed
