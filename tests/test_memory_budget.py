"""max_memory: big message buffers held at once, over every connection, stay
under the node's budget whatever its peers do; a connection whose next
message would pass it waits (TCP holds the sender back) and goes on, in
turn, as memory comes back.  A connection that stopped reading is
collected when its peer leaves, if what it holds unread can no longer be
acknowledged."""

import socket
import struct
import time

import pytest
from support import wire
from support.nodes import addr
from support.raw import connect, recv_exact

import chirp

MIB = 1 << 20
BIG = MIB - 64  # data of a message just under 1 MiB with its header


def _take_all(node, quiet=1.0):
    """Receive (without releasing) until nothing comes for quiet s."""
    got = []
    while True:
        try:
            got.append(node.recv(timeout=quiet))
        except chirp.ChirpTimeoutError:
            return got


def test_many_connections_stay_within_max_memory(node_factory):
    """Six asynchronous senders, two 1 MiB messages each, at a node with a
    4 MiB budget that releases nothing: at most 4 arrive; each release lets
    the next in; in the end all 12 arrive, once each."""
    rx = node_factory(
        synchronous=False, auto_release=False, max_slots=4, max_memory=4 * MIB,
        max_msg_size=MIB, timeout=30.0,
    )  # fmt: skip
    senders = [node_factory(synchronous=False, timeout=30.0) for _ in range(6)]
    futs = [s.send_async(addr(rx), bytes([i]) * BIG) for i in range(12) for s in [senders[i // 2]]]
    held = _take_all(rx)
    stats = rx.stats()
    assert 1 <= len(held) <= 4, len(held)
    assert stats["message_memory"] <= 4 * MIB, stats
    assert stats["memory_waits"] >= 1, stats
    seen = [m.data[0] for m in held]
    while held:
        held.pop(0).release()
        more = _take_all(rx, quiet=0.5)
        seen += [m.data[0] for m in more]
        held += more
        assert rx.stats()["message_memory"] <= 4 * MIB
    assert sorted(seen) == list(range(12))
    assert all(f.exception(timeout=10) is None for f in futs)
    assert rx.stats()["message_memory"] == 0


def test_a_reconnecting_sender_does_not_grow_the_receiver(node_factory):
    """A synchronous sender times out at a receiver that holds everything,
    and sends again on a new connection, round after round.  Without the
    budget each round's connection brought fresh slots full of 1 MiB
    messages; with it the receiver holds at most max_memory, and the
    sender keeps getting errors, not successes."""
    rx = node_factory(
        synchronous=True, auto_release=False, max_slots=2, max_memory=3 * MIB,
        max_msg_size=MIB,
    )  # fmt: skip
    tx = node_factory(synchronous=True, timeout=0.3, max_inflight=8)
    outcomes = []
    for i in range(8):
        futs = [tx.send_async(addr(rx), bytes([i]) * BIG) for _ in range(2)]
        outcomes += [f.exception(timeout=10) for f in futs]
        assert rx.stats()["message_memory"] <= 3 * MIB
    held = _take_all(rx, quiet=0.5)
    assert len(held) <= 3, len(held)
    assert rx.stats()["message_memory"] <= 3 * MIB
    assert all(isinstance(e, chirp.ChirpError) for e in outcomes), outcomes


@pytest.mark.parametrize("how", ["fin", "reset"])
def test_a_stalled_connection_is_collected_when_its_peer_leaves(node_factory, how):
    """A raw peer writes three acknowledged messages to a node with one slot
    that releases nothing, and leaves (FIN, or RST).  The node stopped
    reading at the second, so libuv never reports it; it still sees it and
    closes the connection (the second and third could never be
    acknowledged).  The message it handed out stays readable."""
    events = []
    rx = node_factory(synchronous=True, auto_release=False, max_slots=1, on_event=events.append)
    s = connect(rx.port)
    s.sendall(wire.handshake(40000, wire.new_identity()))
    recv_exact(s, wire.HANDSHAKE_SIZE)
    for n in range(3):
        s.sendall(wire.message(None, n + 1, b"m%d" % n * 1000, type=wire.REQ_ACK))
    first = rx.recv(timeout=5.0)
    time.sleep(0.3)  # the rest is in the node's socket, unread
    if how == "fin":
        s.shutdown(socket.SHUT_WR)
    else:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and not any(e.kind == "disconnected" for e in events):
        time.sleep(0.05)
    gone = [e for e in events if e.kind == "disconnected"]
    assert gone, f"the stalled connection was not collected: {events}"
    assert gone[0].reason == "closed_by_peer", gone[0]
    assert "while its slots were held" in gone[0].detail, gone[0]
    assert rx.stats()["connections_ready"] == 0
    assert first.data == b"m0" * 1000
    first.release()
    assert _take_all(rx, quiet=0.3) == []
    s.close()


def test_a_stalled_asynchronous_stream_is_still_delivered_after_the_close(node_factory):
    """The same with unacknowledged messages (an asynchronous sender that
    wrote and left): they count as sent, so the node keeps the connection
    and delivers them as it releases."""
    rx = node_factory(synchronous=False, auto_release=False, max_slots=1)
    s = connect(rx.port)
    s.sendall(wire.handshake(40001, wire.new_identity()))
    recv_exact(s, wire.HANDSHAKE_SIZE)
    for n in range(3):
        s.sendall(wire.message(None, n + 1, b"a%d" % n * 1000))
    first = rx.recv(timeout=5.0)
    time.sleep(0.3)
    s.shutdown(socket.SHUT_WR)
    time.sleep(1.5)  # a few of the node's ticks
    got = [first.data]
    first.release()
    for _ in range(2):
        with rx.recv(timeout=5.0) as m:
            got.append(m.data)
    assert got == [b"a0" * 1000, b"a1" * 1000, b"a2" * 1000]
    s.close()


def test_connections_from_one_address_are_capped(node_factory):
    """max_peer_connections=3: a fourth raw connection from 127.0.0.1 is
    closed at once with a refused event (reason "limit"); a chirp peer
    still gets through once one of them is gone."""
    events = []
    rx = node_factory(max_peer_connections=3, on_event=events.append)
    held = [connect(rx.port) for _ in range(3)]
    extra = connect(rx.port)
    extra.settimeout(5.0)
    assert extra.recv(100) == b"", "the fourth connection was not closed"
    refused = [e for e in events if e.kind == "refused"]
    deadline = time.monotonic() + 5
    while not refused and time.monotonic() < deadline:
        time.sleep(0.02)
        refused = [e for e in events if e.kind == "refused"]
    assert refused and refused[0].reason == "limit", events
    assert "3 connections from this address already" in refused[0].detail, refused[0]
    held.pop().close()
    time.sleep(0.3)  # the node sees that close
    tx = node_factory()
    fut = tx.send_async(addr(rx), b"through")
    with rx.recv(timeout=5.0) as m:
        assert m.data == b"through"
    assert fut.result(timeout=5.0) is None
    for s in held + [extra]:
        s.close()
