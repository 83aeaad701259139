"""Hostile raw-socket peers against a live node (plaintext on 127.0.0.1):
malformed, truncated, trickled and random frames (support/wire.py has the
format).  The connection that breaks the protocol is closed; the node
delivers what was valid before it and keeps serving others."""

import os
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import wire
from support.net import LOCAL
from support.nodes import NodeFactory, addr, assert_no_message, roundtrip
from support.payloads import pattern
from support.raw import connect, read_header, recv_exact, send_quietly, wait_closed
from support.waits import run_in_thread
from support.wire import ACK, NOOP, REQ_ACK

from .kit import rss_kib

pytestmark = pytest.mark.hang_limit(90)

MAX = 64 * 1024
RAW_ID = b"R" * 16


def handshake(port=40000, identity=RAW_ID):
    return wire.handshake(port, identity)


def assert_closed_by_node(sock, timeout=5.0):
    """The node closes the connection: reads end in EOF or a reset."""
    assert wait_closed(sock, timeout), f"node did not close the connection within {timeout:.1f} s"


@pytest.fixture
def server(node_factory):
    return node_factory(max_msg_size=MAX, timeout=5.0)


@pytest.fixture
def client(node_factory):
    return node_factory(synchronous=True, timeout=5.0)


def assert_still_serves(server, client):
    data = os.urandom(200)
    msg = roundtrip(client, server, data, header=b"good")
    assert msg.data == data
    assert msg.header == b"good"
    assert msg.remote_identity == client.identity
    assert msg.port == client.port
    # and the server can still send out
    back = roundtrip(server, client, b"back")
    assert back.remote_identity == server.identity


BAD_INPUTS = {
    # no valid frame at all: handshake then a header with data_len 2^32-1
    "garbage": b"\xff" * 64,
    "oversized_data_len": handshake() + wire.header(None, 1, MAX + 1, 0, 0),
    "oversized_header_plus_data": handshake() + wire.header(None, 1, MAX - 99, 100, 0),
    "oversized_huge": handshake() + wire.header(None, 1, 0xFFFFFFFF, 0, REQ_ACK),
    # header_len + data_len wraps to small numbers in uint32 arithmetic
    "overflow_to_zero": handshake() + wire.header(None, 1, 0xFFFFFFFF, 1, 0),
    "overflow_to_zero_2": handshake() + wire.header(None, 1, 0x100000000 - 0xFFFF, 0xFFFF, 0),
    "overflow_to_small": handshake() + wire.header(None, 1, 0xFFFFFFFF - 5, 10, 0) + b"x" * 10,
    "ack_with_data": handshake() + wire.header(None, 1, 5, 0, ACK) + b"hello",
    "ack_with_header": handshake() + wire.header(None, 1, 0, 3, ACK) + b"hdr",
    "ack_with_req_ack": handshake() + wire.header(None, 1, 0, 0, ACK | REQ_ACK),
    "noop_with_req_ack": handshake() + wire.header(None, 1, 0, 0, NOOP | REQ_ACK),
    "noop_with_data": handshake() + wire.header(None, 1, 4, 0, NOOP) + b"data",
    "noop_with_header": handshake() + wire.header(None, 1, 0, 2, NOOP) + b"hh",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_closes_connection(server, client, name):
    s = connect(server.port)
    try:
        send_quietly(s, BAD_INPUTS[name])
        assert_closed_by_node(s, timeout=5.0)
    finally:
        s.close()
    assert_no_message(server, 0.2)
    assert_still_serves(server, client)


def test_bad_input_after_good_message(server, client):
    """A valid message is delivered; the protocol error that follows on the
    same connection closes it."""
    s = connect(server.port)
    try:
        ident = wire.new_identity()
        s.sendall(handshake() + wire.message(ident, 1, b"valid", b"h"))
        msg = server.recv(timeout=5.0)
        assert msg.data == b"valid" and msg.identity == ident
        msg.release()
        send_quietly(s, wire.header(None, 2, 3, 0, ACK) + b"bad")
        assert_closed_by_node(s, timeout=5.0)
    finally:
        s.close()
    assert_still_serves(server, client)


def test_half_header_then_close(server, client):
    s = connect(server.port)
    s.sendall(handshake() + wire.header(None, 1, 10, 0, 0)[:13])
    time.sleep(0.1)
    s.close()
    assert_no_message(server, 0.3)
    assert_still_serves(server, client)


def test_half_handshake_then_close(server, client):
    s = connect(server.port)
    s.sendall(handshake()[:7])
    s.close()
    assert_still_serves(server, client)


def test_partial_message_body_then_close(server, client):
    s = connect(server.port)
    s.sendall(handshake() + wire.header(None, 1, 1000, 10, 0) + b"x" * 500)
    time.sleep(0.1)
    s.close()
    assert_no_message(server, 0.3)
    assert_still_serves(server, client)


def test_silent_connections_do_not_block_others(server, client):
    """Connections that never send a handshake, or stop half-way, do not
    keep the node from serving a good peer."""
    idle = [connect(server.port) for _ in range(5)]
    half = connect(server.port)
    half.sendall(handshake()[:9])
    try:
        assert_still_serves(server, client)
    finally:
        for s in idle + [half]:
            s.close()


def test_many_garbage_connections(server, client):
    socks = []
    try:
        for _i in range(40):
            s = connect(server.port)
            send_quietly(s, b"\xff" * 64)
            socks.append(s)
        for s in socks:
            assert_closed_by_node(s, timeout=10.0)
    finally:
        for s in socks:
            s.close()
    assert_still_serves(server, client)


def test_node_sends_its_handshake(server):
    s = connect(server.port)
    try:
        s.sendall(handshake())
        port, ident = wire.decode_handshake(recv_exact(s, 18))
        assert port == server.port
        assert ident == server.identity
    finally:
        s.close()


def test_byte_by_byte_handshake_and_message(server, client):
    """Handshake and message trickled one byte at a time are still parsed;
    the message carries what the raw peer said; releasing it sends an ACK."""
    s = connect(server.port)
    try:
        raw_port = 41234
        ident = wire.new_identity()
        data = b"trickled data \x00\x01\xff"
        hdr = b"trickled header"
        serial = 7
        stream = handshake(raw_port) + wire.message(ident, serial, data, hdr, REQ_ACK)
        for i in range(len(stream)):
            s.sendall(stream[i : i + 1])
            time.sleep(0.01)
        msg = server.recv(timeout=5.0)
        assert msg.data == data
        assert msg.header == hdr
        assert msg.identity == ident
        assert msg.serial == serial
        assert msg.remote_identity == RAW_ID
        assert msg.port == raw_port  # from the handshake, not the TCP port
        assert msg.address == LOCAL
        # the node's handshake, then its capability frame (serial 1)
        port, node_ident = wire.decode_handshake(recv_exact(s, 18))
        assert port == server.port and node_ident == server.identity
        cap = wire.decode_header(recv_exact(s, 27))
        assert wire.decode_capability(cap.identity, cap.type) == (1, wire.CAP_REJECT, 64)
        assert wire.capability_max_msg_size(cap.identity) == server.config.max_msg_size
        assert cap.serial == 1
        msg.release()
        ack = wire.decode_header(recv_exact(s, 27))
        ack_ident, ack_serial, ack_dlen, ack_hlen, ack_type = ack
        assert ack_ident == ident
        assert ack_type == ACK
        assert ack_dlen == 0 and ack_hlen == 0
        assert ack_serial == 2  # the second frame the node writes to us
        # a second message is accepted on the same connection
        ident2 = wire.new_identity()
        s.sendall(wire.message(ident2, serial + 1, b"second", b"", REQ_ACK))
        msg2 = server.recv(timeout=5.0)
        assert msg2.data == b"second" and msg2.identity == ident2
        msg2.release()
        ack2 = wire.decode_header(recv_exact(s, 27))
        assert ack2[0] == ident2 and ack2[4] == ACK and ack2[1] == 3
    finally:
        s.close()
    assert_still_serves(server, client)


def test_no_ack_without_req_ack(server):
    s = connect(server.port)
    try:
        s.sendall(handshake() + wire.message(wire.new_identity(), 1, b"no ack please"))
        recv_exact(s, 18)  # node handshake
        cap = wire.decode_header(recv_exact(s, 27))  # and capability frame
        assert wire.decode_capability(cap.identity, cap.type) is not None
        msg = server.recv(timeout=5.0)
        msg.release()
        s.settimeout(0.5)
        with pytest.raises(socket.timeout):
            extra = s.recv(100)
            raise AssertionError(f"unexpected bytes {extra!r}")
    finally:
        s.close()


def test_valid_noop_is_accepted_and_invisible(server):
    s = connect(server.port)
    try:
        ident = wire.new_identity()
        noop = wire.header(None, 1, 0, 0, NOOP)
        s.sendall(handshake() + noop + wire.message(ident, 2, b"after noop"))
        msg = server.recv(timeout=5.0)
        assert msg.identity == ident and msg.data == b"after noop"
        msg.release()
        assert_no_message(server, 0.2)
    finally:
        s.close()


def test_message_of_exactly_max_size_accepted(server):
    s = connect(server.port)
    try:
        hdr = b"h" * 100
        data = os.urandom(MAX - len(hdr))
        ident = wire.new_identity()
        s.sendall(handshake() + wire.message(ident, 1, data, hdr))
        msg = server.recv(timeout=5.0)
        assert msg.identity == ident
        assert msg.header == hdr and msg.data == data
        msg.release()
    finally:
        s.close()


def test_reply_reuses_incoming_connection(server):
    """A reply to a raw peer goes back over the connection the raw peer
    opened (the remote is address + handshake port), with the message's
    identity; in synchronous mode it asks for an ACK and the reply completes
    once we send it."""
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind((LOCAL, 0))
    lst.listen(4)
    lst.settimeout(0.1)
    raw_port = lst.getsockname()[1]
    s = connect(server.port)
    try:
        ident = wire.new_identity()
        s.sendall(handshake(raw_port) + wire.message(ident, 1, b"question", b"q"))
        recv_exact(s, 18)
        msg = server.recv(timeout=5.0)
        assert msg.port == raw_port
        msg.release()
        t, box = run_in_thread(server.reply, msg, b"answer", header=b"a")
        rid, rserial, rdlen, rhlen, rtype = read_header(s)
        assert rid == ident
        assert rserial == 2  # after the capability frame
        assert rtype & REQ_ACK, "synchronous node asks for an ACK"
        assert rtype & (ACK | NOOP) == 0
        assert recv_exact(s, rhlen + rdlen) == b"a" + b"answer"
        s.sendall(wire.header(ident, 2, 0, 0, ACK))
        t.join(timeout=10)
        assert not t.is_alive()
        assert "error" not in box, box.get("error")
        # no second connection was opened to the listening port
        with pytest.raises(socket.timeout):
            c, _ = lst.accept()
            c.close()
            raise AssertionError("node opened a new connection for the reply")
    finally:
        s.close()
        lst.close()


def test_unknown_ack_is_harmless(server, client):
    """An ACK for an identity the node never sent must not crash it."""
    s = connect(server.port)
    try:
        s.sendall(handshake() + wire.header(None, 1, 0, 0, ACK))
        time.sleep(0.1)
    finally:
        s.close()
    assert_still_serves(server, client)


def test_handshake_then_close_repeatedly(server, client):
    for _ in range(20):
        s = connect(server.port)
        s.sendall(handshake(port=40000 + _))
        s.close()
    assert_still_serves(server, client)


def test_concurrent_hostile_and_good_traffic(server, client):
    """Garbage connections keep coming while a good peer sends 200 messages."""
    stop = threading.Event()

    def attack():
        while not stop.is_set():
            try:
                s = connect(server.port)
                send_quietly(s, b"\xff" * 64)
                s.close()
            except OSError:
                pass
            time.sleep(0.005)

    th = threading.Thread(target=attack, daemon=True)
    th.start()
    try:
        futs = [client.send_async(addr(server), b"%05d" % i) for i in range(200)]
        got = []
        for _ in range(200):
            m = server.recv(timeout=10.0)
            got.append(m.data)
            m.release()
        for f in futs:
            assert f.result(timeout=10) is None
        assert got == [b"%05d" % i for i in range(200)]
    finally:
        stop.set()
        th.join(timeout=5)


# ------------------------------------------------------------- hypothesis


@pytest.fixture(scope="module")
def fuzz_nodes():
    nodes = NodeFactory(bind_v6="")  # node_factory's nodes live for one test
    server = nodes(max_msg_size=MAX, timeout=5.0)
    client = nodes(synchronous=False, timeout=5.0)
    yield server, client
    nodes.close()


def _serves_despite_strays(server, client, timeout=10.0):
    """A good message gets through; stray messages are skipped."""
    token = os.urandom(12)
    fut = client.send_async(addr(server), token)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "good peer not served"
        try:
            m = server.recv(timeout=min(left, 2.0))
        except TimeoutError:
            continue
        m.release()
        if m.data == token:
            assert fut.result(timeout=timeout) is None
            return


FRAME = st.tuples(
    st.sampled_from([0, REQ_ACK, ACK, ACK | REQ_ACK, NOOP, NOOP | REQ_ACK]),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=0, max_value=300),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(FRAME, max_size=8), split=st.integers(1, 64))
def test_fuzz_frame_sequences(fuzz_nodes, frames, split):
    """Random sequences of well- and ill-formed frames: every well-formed
    message before the first protocol error is delivered exactly, the error
    closes the connection, and without an error it stays open."""
    server, client = fuzz_nodes
    stream = bytearray(handshake(port=40001))
    expected, error = [], False
    for n, (typ, hlen, dlen) in enumerate(frames, start=1):
        ident = os.urandom(16)
        hdr, data = os.urandom(hlen), os.urandom(dlen)
        stream += wire.message(ident, n, data, hdr, typ)
        if typ & (ACK | NOOP):
            if hlen or dlen or typ & REQ_ACK:
                error = True
                break
            continue  # a clean NOOP, or an ACK for an unknown identity
        expected.append((ident, n, hdr, data))
    s = connect(server.port)
    try:
        for i in range(0, len(stream), split * 16):
            send_quietly(s, bytes(stream[i : i + split * 16]))
        for ident, serial, hdr, data in expected:
            m = server.recv(timeout=5.0)
            m.release()
            assert (m.identity, m.serial, m.header, m.data) == (ident, serial, hdr, data)
            assert m.remote_identity == RAW_ID and m.port == 40001
        if error:
            assert_closed_by_node(s, timeout=5.0)
        else:
            last = os.urandom(16)
            s.sendall(wire.message(last, 99, b"last"))
            m = server.recv(timeout=5.0)
            m.release()
            assert m.identity == last and m.data == b"last"
        assert_no_message(server, 0.05)
    finally:
        s.close()
    _serves_despite_strays(server, client)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.binary(min_size=1, max_size=400))
def test_fuzz_random_bytes(fuzz_nodes, junk):
    """Arbitrary bytes (after a valid handshake, or instead of one) never
    take the node down."""
    server, client = fuzz_nodes
    for prefix in (b"", handshake(port=40002)):
        s = connect(server.port)
        try:
            send_quietly(s, prefix + junk)
        finally:
            s.close()
    _serves_despite_strays(server, client)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([0, REQ_ACK]),
            st.integers(min_value=0, max_value=40),
            st.integers(min_value=0, max_value=3000),
        ),
        min_size=1,
        max_size=4,
    ),
    cut=st.floats(min_value=0.0, max_value=1.0),
)
def test_fuzz_truncated_stream(fuzz_nodes, frames, cut):
    """Valid messages cut off at a random byte, then the peer closes: the
    complete ones are delivered, the node survives and serves others."""
    server, client = fuzz_nodes
    stream = bytearray(handshake(port=40003))
    ends = []
    for n, (typ, hlen, dlen) in enumerate(frames, start=1):
        ident = os.urandom(16)
        stream += wire.message(ident, n, pattern(dlen), os.urandom(hlen), typ)
        ends.append((len(stream), ident))
    cut_at = int(len(stream) * cut)
    complete = [ident for end, ident in ends if end <= cut_at]
    s = connect(server.port)
    try:
        send_quietly(s, bytes(stream[:cut_at]))
        for ident in complete:
            m = server.recv(timeout=5.0)
            m.release()
            assert m.identity == ident
    finally:
        s.close()
    _serves_despite_strays(server, client)


def _rss_mib():
    return rss_kib(os.getpid()) // 1024


def test_flood_that_never_reads_acks_is_throttled(server, client):
    """A raw peer floods REQ_ACK messages and never reads the ACKs: the node
    stops reading once its ACK writes back up (TCP pushes back on the
    flooder), memory stays bounded, and a good peer is still served."""
    drained = []
    stop_at = time.monotonic() + 1.5

    def drain():
        n = 0
        while time.monotonic() < stop_at:
            try:
                server.recv(timeout=0.1)
                n += 1
            except TimeoutError:
                pass
        drained.append(n)

    rss0 = _rss_mib()
    s = connect(server.port)
    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        s.sendall(handshake(port=40020))
        s.setblocking(False)
        blob = wire.message(b"f" * 16, 1, b"0123456789", b"", REQ_ACK) * 4000
        off = sent = 0
        while time.monotonic() < stop_at:
            try:
                k = s.send(blob[off:])
            except BlockingIOError:
                time.sleep(0.002)
                continue
            sent += k
            off = (off + k) % len(blob)
        t.join(timeout=5)
        # the flooder was held back: far less went out than loopback allows
        assert sent < 512 * 1024 * 1024, sent
        assert drained and drained[0] > 0
        assert _rss_mib() - rss0 < 200, "memory grew by %d MiB" % (_rss_mib() - rss0)
        _serves_despite_strays(server, client)
    finally:
        s.close()


def test_second_connection_for_same_remote_waits_for_the_first(node_factory):
    """Two connections announce the same remote (address + handshake port):
    messages on both are delivered and each ACK goes back on the
    connection its message came on.  The second does not take over from
    the first while it is open (a port in a handshake is only a claim):
    a reply goes over the first; once it closes, the second carries what
    is sent to the remote.  (libchirp 1.2 lets the last handshake win.)"""
    node = node_factory(synchronous=False, auto_release=False)
    r1 = connect(node.port)
    r2 = connect(node.port)
    try:
        r1.sendall(handshake(port=40100, identity=b"1" * 16))
        recv_exact(r1, 18)
        id1 = wire.new_identity()
        r1.sendall(wire.message(id1, 1, b"from r1", b"", REQ_ACK))
        m1 = node.recv(timeout=5.0)
        assert m1.data == b"from r1" and m1.remote_identity == b"1" * 16
        r2.sendall(handshake(port=40100, identity=b"2" * 16))
        recv_exact(r2, 18)
        id2 = wire.new_identity()
        r2.sendall(wire.message(id2, 1, b"from r2", b"", REQ_ACK))
        m2 = node.recv(timeout=5.0)
        assert m2.data == b"from r2" and m2.remote_identity == b"2" * 16
        assert m1.port == m2.port == 40100
        m1.release()
        ack1 = read_header(r1)
        assert ack1[0] == id1 and ack1[4] == ACK
        m2.release()
        ack2 = read_header(r2)
        assert ack2[0] == id2 and ack2[4] == ACK
        node.reply(m1, b"answer")
        rid, _, dlen, hlen, rtype = read_header(r1)
        assert rid == id1 and rtype == 0
        assert recv_exact(r1, dlen + hlen) == b"answer"
        r1.close()
        time.sleep(0.3)  # the node sees the close
        node.send(("127.0.0.1", 40100), b"after")
        _, _, dlen, hlen, rtype = read_header(r2)
        assert rtype == 0 and recv_exact(r2, dlen + hlen) == b"after"
    finally:
        r1.close()
        r2.close()
