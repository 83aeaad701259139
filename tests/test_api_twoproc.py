"""Two nodes in separate processes (support/peer.py), synchronous and async."""

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.net import LOCAL
from support.nodes import NodeFactory, assert_no_message, target
from support.payloads import number_of, numbered, pattern, sha256
from support.peer import Peer

import chirp

MODES = [pytest.param(True, id="sync"), pytest.param(False, id="async")]
SIZES = [0, 1, 1000, 70 * 1000, 4 * 1024 * 1024]
SIZE_IDS = ["0B", "1B", "1000B", "70KB", "4MiB"]

ECHO_ID = bytes.fromhex("e0" * 16)
SINK_ID = bytes.fromhex("51" * 16)
SENDER_ID = bytes.fromhex("5e" * 16)
REQUESTER_ID = bytes.fromhex("7e" * 16)


def _mode_args(sync):
    return [] if sync else ["--async"]


@pytest.fixture(scope="module", params=MODES)
def mode(request):
    return request.param


@pytest.fixture(scope="module")
def echo_peer(mode):
    p = Peer("echo", "--identity", ECHO_ID.hex(), "--lifetime", 600, *_mode_args(mode))
    yield p
    p.close()


@pytest.fixture(scope="module")
def sink_peer(mode):
    p = Peer("sink", "--identity", SINK_ID.hex(), "--lifetime", 600, *_mode_args(mode))
    yield p
    p.close()


@pytest.fixture
def local(node_factory, mode):
    return node_factory(synchronous=mode, timeout=10.0)


@pytest.fixture(scope="module")
def module_local(mode):
    """A node for the whole module (node_factory's nodes live for one test)."""
    nodes = NodeFactory()
    yield nodes(synchronous=mode, timeout=10.0)
    nodes.close()


# ---------------------------------------------------------------- requests


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_request_echo_sizes(local, echo_peer, size):
    data = pattern(size, seed=size % 251)
    header = b"hdr-%d" % size
    t0 = time.monotonic()
    ans = local.request(echo_peer.address, data, header=header, timeout=20.0)
    if hasattr(chirp, "Message"):
        assert isinstance(ans, chirp.Message)
    assert len(ans.data) == len(data)
    assert ans.data == data
    assert ans.header == header
    assert ans.remote_identity == ECHO_ID
    assert ans.port == echo_peer.port
    assert ans.address == LOCAL
    assert isinstance(ans.identity, bytes) and len(ans.identity) == 16
    assert isinstance(ans.serial, int) and ans.serial >= 1
    assert time.monotonic() - t0 < 20.0
    # the reply resolved the request and does not also show up in recv()
    assert_no_message(local, 0.3)


def test_request_answers_keep_identity(local, echo_peer):
    answers = [local.request(echo_peer.address, numbered(i), timeout=20.0) for i in range(5)]
    idents = [a.identity for a in answers]
    assert len(set(idents)) == 5, "every request has its own identity"
    assert [number_of(a.data) for a in answers] == list(range(5))


def test_request_async_futures(local, echo_peer):
    futs = [
        local.request_async(echo_peer.address, numbered(i, 100), header=b"q%d" % i)
        for i in range(30)
    ]
    answers = [f.result(timeout=30) for f in futs]
    for i, ans in enumerate(answers):
        assert ans.data == numbered(i, 100)
        assert ans.header == b"q%d" % i
        assert ans.remote_identity == ECHO_ID
    assert len({a.identity for a in answers}) == 30
    assert_no_message(local, 0.3)


def test_request_empty_header_and_data(local, echo_peer):
    ans = local.request(echo_peer.address, b"", header=b"", timeout=20.0)
    assert ans.data == b"" and ans.header == b""


# ------------------------------------------------------------------- sends


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_send_sizes_to_sink(local, sink_peer, size):
    data = pattern(size, seed=(size + 1) % 251)
    header = b"H%08d" % size
    local.send(sink_peer.address, data, header=header)
    # the sink may still print lines of an earlier failed test: match ours
    deadline = time.monotonic() + 30
    while True:
        rec = sink_peer.read_json(max(0.01, deadline - time.monotonic()), kind="msg")
        if rec["header"] == header.hex():
            break
    assert rec["len"] == size
    assert rec["sha256"] == sha256(data)
    assert rec["remote_identity"] == local.identity.hex()
    assert rec["port"] == local.port
    assert rec["address"] == LOCAL
    assert len(bytes.fromhex(rec["identity"])) == 16


def test_send_async_futures_all_resolve(local, sink_peer):
    n = 300
    tag = os.urandom(4).hex().encode()
    futs = [local.send_async(sink_peer.address, numbered(i, 50), header=tag) for i in range(n)]
    for f in futs:
        assert f.result(timeout=30) is None
    recs = []
    deadline = time.monotonic() + 30
    while len(recs) < n:
        rec = sink_peer.read_json(max(0.01, deadline - time.monotonic()), kind="msg")
        if rec["header"] == tag.hex():
            recs.append(rec)
    assert [r["num"] for r in recs] == list(range(n))
    serials = [r["serial"] for r in recs]
    assert all(a < b for a, b in zip(serials, serials[1:], strict=False))


def test_many_messages_in_order_to_sink(mode, tmp_path, local):
    """3000 numbered messages from this process arrive in order, serials
    increasing, at a sink in another process."""
    n = 3000
    log = tmp_path / "sink.log"
    # --linger: the sink keeps its node open a moment after the last
    # message, so this test is about order only (ACKs lost by a close()
    # right after release() are tested in test_api_slots)
    sink = Peer(
        "sink",
        "--count",
        n,
        "--log",
        str(log),
        "--identity",
        SINK_ID.hex(),
        "--lifetime",
        120,
        "--linger",
        1.0,
        *_mode_args(mode),
    )
    try:
        futs = [local.send_async(sink.address, numbered(i, 64)) for i in range(n)]
        for f in futs:
            assert f.result(timeout=60) is None
        done = sink.read_json(60, kind="done")
        assert done["received"] == n
        assert sink.wait(10) == 0
    finally:
        sink.close()
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(recs) == n
    assert [r["num"] for r in recs] == list(range(n))
    serials = [r["serial"] for r in recs]
    assert all(a < b for a, b in zip(serials, serials[1:], strict=False)), "serials increase"
    assert len({r["identity"] for r in recs}) == n, "message identities unique"
    assert {r["remote_identity"] for r in recs} == {local.identity.hex()}
    assert {r["port"] for r in recs} == {local.port}


@pytest.mark.parametrize("concurrent", [False, True], ids=["send", "send_async"])
def test_many_messages_in_order_from_peer(mode, local, concurrent):
    """3000 numbered messages from a peer process arrive here in order, with
    serials increasing, the peer's identity and its listening port."""
    n = 3000
    args = [
        "--count",
        n,
        "--target",
        target(local),
        "--identity",
        SENDER_ID.hex(),
        "--size",
        32,
        "--lifetime",
        120,
        "--header",
        b"seq".hex(),
    ]
    if concurrent:
        args.append("--concurrent")
    sender = Peer("send", *args, *_mode_args(mode))
    try:
        msgs = []
        deadline = time.monotonic() + 90
        while len(msgs) < n:
            assert time.monotonic() < deadline, f"only {len(msgs)} of {n} arrived"
            try:
                m = local.recv(timeout=5.0)
            except TimeoutError:
                continue
            msgs.append(
                (
                    number_of(m.data),
                    m.serial,
                    m.remote_identity,
                    m.port,
                    m.address,
                    m.header,
                    m.identity,
                )
            )
            m.release()
        done = sender.read_json(60, kind="done")
        assert done["nerrors"] == 0, done
        assert done["sent"] == n
        assert sender.wait(10) == 0
    finally:
        sender.close()
    assert [m[0] for m in msgs] == list(range(n))
    serials = [m[1] for m in msgs]
    assert all(a < b for a, b in zip(serials, serials[1:], strict=False))
    assert {m[2] for m in msgs} == {SENDER_ID}
    assert {m[3] for m in msgs} == {sender.port}
    assert {m[4] for m in msgs} == {LOCAL}
    assert {m[5] for m in msgs} == {b"seq"}
    assert len({m[6] for m in msgs}) == n
    assert_no_message(local, 0.2)


# ------------------------------------------------------------------ replies


def test_reply_reaches_requesting_peer(mode, local):
    n = 5
    requester = Peer(
        "request",
        "--count",
        n,
        "--target",
        target(local),
        "--identity",
        REQUESTER_ID.hex(),
        "--size",
        40,
        "--header",
        b"rq".hex(),
        "--lifetime",
        60,
        *_mode_args(mode),
    )
    try:
        seen = []
        for i in range(n):
            msg = local.recv(timeout=15.0)
            assert msg.remote_identity == REQUESTER_ID
            assert msg.port == requester.port
            assert msg.address == LOCAL
            assert msg.header == b"rq"
            assert number_of(msg.data) == i
            answer = b"re:" + msg.data
            local.reply(msg, answer, header=b"rh")
            msg.release()
            seen.append((msg.identity, answer))
        for i, (ident, answer) in enumerate(seen):
            rec = requester.read_json(20, kind="answer")
            assert rec["i"] == i
            assert rec["identity"] == ident.hex(), "reply keeps the identity"
            assert rec["sha256"] == sha256(answer)
            assert rec["header"] == b"rh".hex()
            assert rec["remote_identity"] == local.identity.hex()
            assert rec["port"] == local.port
        done = requester.read_json(20, kind="done")
        assert done["nerrors"] == 0, done
        assert requester.wait(10) == 0
    finally:
        requester.close()


def test_reply_after_release_still_works(local, echo_peer):
    """The echo peer itself is exercised in request tests; here this side
    answers a message it already released (data kept, address kept)."""
    requester = Peer(
        "request",
        "--count",
        1,
        "--target",
        target(local),
        "--lifetime",
        60,
        *_mode_args(local.config.synchronous),
    )
    try:
        msg = local.recv(timeout=15.0)
        msg.release()
        data = msg.data  # still readable after release
        local.reply(msg, data[::-1])
        rec = requester.read_json(20, kind="answer")
        assert rec["identity"] == msg.identity.hex()
        assert rec["sha256"] == sha256(data[::-1])
    finally:
        requester.close()


def test_send_to_peer_that_went_away_fails(mode, local):
    p = Peer("sink", "--lifetime", 60, *_mode_args(mode))
    address = p.address
    try:
        local.send(address, b"first")
        p.read_json(10, kind="msg")
    finally:
        p.close()
    # the connection is gone and nothing listens there any more
    t0 = time.monotonic()
    with pytest.raises(chirp.ChirpError):
        for _ in range(3):  # async mode may need a try to notice
            local.send(address, b"second")
            time.sleep(0.2)
    assert time.monotonic() - t0 < 2 * local.config.timeout + 10


# --------------------------------------------------------------- hypothesis

payload = st.one_of(
    st.binary(max_size=600),
    st.integers(min_value=0, max_value=300_000).map(lambda n: pattern(n, 3)),
)
header_st = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([0, 1, 1000, 65535]).map(lambda n: pattern(n, 5)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=payload, header=header_st)
def test_random_payloads_roundtrip(module_local, echo_peer, data, header):
    ans = module_local.request(echo_peer.address, data, header=header, timeout=20.0)
    assert ans.data == data
    assert ans.header == header
    assert ans.remote_identity == ECHO_ID


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sizes=st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=20))
def test_random_batches_request_async(module_local, echo_peer, sizes):
    futs = [
        module_local.request_async(echo_peer.address, numbered(i, s)) for i, s in enumerate(sizes)
    ]
    for i, (s, f) in enumerate(zip(sizes, futs, strict=False)):
        ans = f.result(timeout=30)
        assert ans.data == numbered(i, s)


def test_peer_killed_mid_stream_fails_pending_sends(mode, local):
    """A receiver killed (SIGKILL) while messages are in flight: every
    pending send completes -- success or a ChirpError -- within the send
    timeout, none hangs, and the node keeps working."""
    # --delay: the sink is slow, so the kill certainly comes mid-stream
    sink = Peer("sink", "--lifetime", 60, "--delay", 0.01, *_mode_args(mode))
    try:
        futs = [local.send_async(sink.address, numbered(i, 20_000)) for i in range(2000)]
        sink.read_records(5, timeout=20)
        sink.kill()
        deadline = time.monotonic() + local.config.timeout * 3 + 10
        failed = 0
        for f in futs:
            exc = f.exception(timeout=max(0.01, deadline - time.monotonic()))
            if exc is not None:
                assert isinstance(exc, chirp.ChirpError), repr(exc)
                failed += 1
        if mode:  # synchronous: not everything can have been acknowledged
            assert failed > 0
    finally:
        sink.close()
    echo = Peer("echo", "--lifetime", 60, *_mode_args(mode))
    try:
        assert local.request(echo.address, b"alive", timeout=10.0).data == b"alive"
    finally:
        echo.close()


def test_peer_restarted_on_same_port(mode, local):
    """A peer dies and a new one (new identity) listens on the same port:
    after the failure, sends reach the new peer."""
    first = Peer("sink", "--identity", "aa" * 16, "--lifetime", 60, *_mode_args(mode))
    port = first.port
    try:
        local.send(first.address, b"to first")
        assert first.read_json(10, kind="msg")["sha256"] == sha256(b"to first")
    finally:
        first.close()
    second = Peer(
        "sink", "--port", port, "--identity", "bb" * 16, "--lifetime", 60, *_mode_args(mode)
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                local.send(second.address, b"to second")
                break
            except chirp.ChirpError:
                # the old connection's failure may surface once
                assert time.monotonic() < deadline
                time.sleep(0.1)
        rec = second.read_json(10, kind="msg")
        assert rec["sha256"] == sha256(b"to second")
        assert rec["remote_identity"] == local.identity.hex()
        ans = local.send(second.address, b"again")
        assert ans is None
        assert second.read_json(10, kind="msg")["sha256"] == sha256(b"again")
    finally:
        second.close()


def test_fan_in_from_several_peers(mode, local):
    """Four peer processes send at once; per sender, order and identity hold
    and every message arrives exactly once."""
    n, k = 400, 4
    senders = []
    try:
        for j in range(k):
            ident = bytes([0x10 + j]) * 16
            senders.append(
                Peer(
                    "send",
                    "--count", n,
                    "--target", target(local),
                    "--identity", ident.hex(),
                    "--size", 100 + 5000 * j,
                    "--concurrent",
                    "--lifetime", 120,
                    *_mode_args(mode),
                )
            )  # fmt: skip
        by_sender = {}
        deadline = time.monotonic() + 60
        total = 0
        while total < n * k:
            assert time.monotonic() < deadline, f"only {total} of {n * k}"
            try:
                m = local.recv(timeout=5.0)
            except TimeoutError:
                continue
            by_sender.setdefault(m.remote_identity, []).append((number_of(m.data), m.port))
            m.release()
            total += 1
        assert set(by_sender) == {bytes([0x10 + j]) * 16 for j in range(k)}
        for j, p in enumerate(senders):
            got = by_sender[bytes([0x10 + j]) * 16]
            assert [num for num, _ in got] == list(range(n)), f"sender {j} out of order"
            assert {port for _, port in got} == {p.port}
            done = p.read_json(30, kind="done")
            assert done["nerrors"] == 0, done
    finally:
        for p in senders:
            p.close()
