"""Idle collection, NOOP probes and ACK handling, seen on the wire.

A raw socket server speaks chirp's protocol by hand (reads the node's
handshake, answers with its own listening port) and looks at every byte the
node writes.
"""

import time

import pytest
from support import wire
from support.raw import RawServer

pytestmark = pytest.mark.hang_limit(120)

REUSE = 1.0
TIMEOUT = 0.2
IDLE_LIMIT = max(REUSE, 3 * TIMEOUT)  # 1.0 s
NOOP_AFTER = 0.75 * REUSE  # 0.75 s


def read_frame(conn):
    """(identity, serial, type, header, data) of the next message."""
    h, header, data = conn.read_message()
    return h.identity, h.serial, h.type, header, data


class Retry(Exception):
    """The machine was too slow to hit a timing window: run the scenario again."""


def _connect(node, server, data):
    """send_async(data) to the raw server; accept, handshake; returns (conn, fut)."""
    fut = node.send_async(server.address, data)
    conn = server.accept(timeout=5)
    port, ident = server.handshake(conn)
    assert port == node.port, "the handshake carries the node's listening port"
    assert ident == node.identity
    return conn, fut


def _noop_scenario(node_factory):
    node = node_factory(synchronous=False, reuse_time=REUSE, timeout=TIMEOUT)
    server = RawServer()
    try:
        conn, fut = _connect(node, server, b"one")
        fut.result(timeout=2)
        # First after the handshake: the capability frame, serial 1.
        cap = wire.decode_header(conn.read_exact(wire.HEADER_SIZE))
        assert wire.decode_capability(cap.identity, cap.type) == (1, wire.CAP_REJECT, 64)
        assert cap.serial == 1
        ident1, serial, typ, header, data = read_frame(conn)
        assert (serial, typ, header, data) == (2, 0, b"", b"one")

        # Shortly after: no probe in front.
        time.sleep(0.2)
        node.send(server.address, b"two")
        _, serial, typ, _, data = read_frame(conn)
        assert (serial, typ, data) == (3, 0, b"two")
        t_last = time.monotonic()

        # Idle for more than 3/4 of reuse_time, less than the idle limit: a
        # NOOP header goes in front of the next message.
        time.sleep(NOOP_AFTER + 0.1 - (time.monotonic() - t_last))
        node.send(server.address, b"three")
        t_three = time.monotonic()
        if t_three - t_last > IDLE_LIMIT - 0.05:
            raise Retry(f"slept {t_three - t_last:.3f}s, too close to the idle limit")
        raw = conn.read_exact(wire.HEADER_SIZE)
        ident, serial, dlen, hlen, typ = wire.decode_header(raw)
        assert typ == wire.NOOP, f"expected a NOOP before the message, got type {typ}: {raw!r}"
        assert (dlen, hlen, serial) == (0, 0, 4)
        assert ident != ident1
        assert wire.decode_capability(ident, typ) is None, "a probe is a plain NOOP"
        _, serial, typ, _, data = read_frame(conn)
        assert (serial, typ, data) == (5, 0, b"three"), "the serial counts the NOOP too"

        # Idle past the limit: the node closes the connection.
        waited = conn.wait_eof(timeout=IDLE_LIMIT + 3)
        since = time.monotonic() - t_three
        assert since >= IDLE_LIMIT - 0.1, f"closed after only {since:.2f}s idle"
        assert since <= IDLE_LIMIT + 1.5, f"idle connection closed only after {since:.2f}s"

        # The next send opens a new connection transparently; no probe on a
        # fresh connection.
        conn2, fut = _connect(node, server, b"four")
        fut.result(timeout=2)
        _, serial, typ, _, data = read_frame(conn2)
        assert (typ, data) == (0, b"four")
        print(
            f"\n[wire] NOOP after {t_three - t_last:.2f}s idle; EOF {since:.2f}s after the last "
            f"message (waited {waited:.2f}s)"
        )
    finally:
        server.close()


def test_noop_probe_and_idle_collection(node_factory):
    for _attempt in range(3):
        try:
            _noop_scenario(node_factory)
            return
        except Retry as e:
            print(f"[wire] retry: {e}")
    pytest.fail("timing windows missed three times (machine too loaded?)")


def test_sync_send_completes_only_on_the_right_ack(node_factory, raw_server):
    import chirp

    node = node_factory(synchronous=True, timeout=0.5, reuse_time=30.0)
    conn, fut = _connect(node, raw_server, b"m1")
    ident, serial, typ, _, data = read_frame(conn)
    assert typ == wire.REQ_ACK and data == b"m1"
    time.sleep(0.1)
    assert not fut.done(), "a synchronous send completed without an ACK"
    conn.send_ack(b"\x00" * 16)  # an ACK for an unknown message: ignored
    time.sleep(0.1)
    assert not fut.done(), "an ACK with a foreign identity completed the send"
    conn.send_ack(ident)
    assert fut.result(timeout=2) is None

    # No ACK at all: ChirpTimeoutError, and the node drops the connection.
    t0 = time.monotonic()
    fut = node.send_async(raw_server.address, b"m2")
    ident, _, typ, _, data = read_frame(conn)
    assert typ == wire.REQ_ACK and data == b"m2"
    with pytest.raises(chirp.ChirpTimeoutError):
        fut.result(timeout=5)
    took = time.monotonic() - t0
    assert 0.4 <= took <= 2.0, took
    conn.wait_eof(timeout=3)
    # A late ACK for the failed message on a new connection changes nothing,
    # and the next message is ACKed normally.
    conn2, fut = _connect(node, raw_server, b"m3")
    conn2.send_ack(ident)
    ident3, _, typ, _, data = read_frame(conn2)
    assert data == b"m3"
    conn2.send_ack(ident3)
    assert fut.result(timeout=2) is None


def test_protocol_error_fails_inflight_send(node_factory, raw_server):
    """An ACK that carries data is a protocol error: the node closes the
    connection and the send waiting for its ACK fails (it must not succeed)."""
    import chirp

    node = node_factory(synchronous=True, timeout=2.0)
    conn, fut = _connect(node, raw_server, b"m1")
    ident, *_ = read_frame(conn)
    conn.sock.sendall(wire.header(ident, 1, 3, 0, wire.ACK) + b"bad")
    with pytest.raises(chirp.ChirpError) as ei:
        fut.result(timeout=5)
    assert isinstance(ei.value, (chirp.ProtocolError, chirp.ChirpConnectionError)), repr(ei.value)
    conn.wait_eof(timeout=3)
    print(f"\n[wire] bad ACK -> {type(ei.value).__name__}: {ei.value}")
