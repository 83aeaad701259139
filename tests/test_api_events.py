"""Connection events, stats and peers: what a node tells about its peers.

Each kind and cause of event is made happen for real (a peer process
killed, idle collection, an oversize message, a protocol violation, a
refused connect, the node's close; TLS refusals are in
tests/tls/test_tls_reject.py), and the counters are checked against
what was sent."""

from __future__ import annotations

import asyncio
import logging

import pytest
from support import wire
from support.net import LOCAL, free_port
from support.nodes import addr, recv_n
from support.peer import Peer
from support.raw import connect, send_quietly, wait_closed
from support.waits import wait_until

import chirp


class Events(list):
    """An on_event callback that keeps what it gets."""

    def __call__(self, ev: chirp.PeerEvent) -> None:
        self.append(ev)

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(e.kind, e.reason) for e in self]

    def wait_for(self, kind: str, reason: str | None = None, timeout: float = 10.0):
        def found():
            return next((e for e in self if e.kind == kind and e.reason == reason), None)

        return wait_until(found, timeout, lambda: f"a {kind}/{reason} event in {self.kinds()}")


def test_connected_then_idle_collection_on_both_sides(node_factory, caplog):
    tx_events, rx_events = Events(), Events()
    rx = node_factory(synchronous=False, on_event=rx_events)  # collects after 30 s
    tx = node_factory(synchronous=False, on_event=tx_events, timeout=0.3, reuse_time=0.3)
    with caplog.at_level(logging.INFO, logger="chirp"):
        tx.send(addr(rx), b"hello")
        assert rx.recv(timeout=5).data == b"hello"
        out = tx_events.wait_for("connected")
        inc = rx_events.wait_for("connected")
        # one side collects the idle connection, the other sees it closed
        tx_events.wait_for("disconnected", "idle")
        rx_events.wait_for("disconnected", "closed_by_peer")
    assert out.outgoing and not inc.outgoing and not out.encrypted
    assert out.identity == rx.identity and inc.identity == tx.identity
    assert out.port == rx.port and inc.port == tx.port and out.address == LOCAL
    assert out.reason is None and out.error is None and out.detail == ""
    assert tx_events.kinds() == [("connected", None), ("disconnected", "idle")]
    logged = [r for r in caplog.records if r.name == "chirp" and r.levelno == logging.INFO]
    assert any(
        f"connected to {LOCAL}:{rx.port} (plaintext, outgoing)" in r.getMessage() for r in logged
    )
    assert any(f"disconnected from {LOCAL}:{rx.port} (idle)" in r.getMessage() for r in logged)


def test_a_killed_peer_process_is_disconnected_closed_by_peer(node_factory):
    events = Events()
    tx = node_factory(synchronous=True, on_event=events)
    with Peer("echo") as peer:
        assert tx.request(peer.address, b"ping", timeout=10).data == b"ping"
        events.wait_for("connected")
        peer.kill()
        gone = events.wait_for("disconnected", "closed_by_peer")
    assert gone.port == peer.port and gone.error == "CH_ECONN"
    assert "connection closed by peer" in gone.detail or "reset" in gone.detail
    assert tx.stats()["connections_closed"] == 1


def test_a_connect_to_nobody_is_refused(node_factory, caplog):
    events = Events()
    tx = node_factory(synchronous=False, on_event=events)
    port = free_port()
    with caplog.at_level(logging.WARNING, logger="chirp"):
        with pytest.raises(chirp.ChirpConnectionError):
            tx.send_async((LOCAL, port), b"lost").result(timeout=10)
        ev = events.wait_for("refused", "connect_failed")
    assert ev.port == port and ev.outgoing and ev.error == "CH_ECONN"
    assert "connect failed" in ev.detail and ev.identity is None
    st = tx.stats()
    assert st["sends_failed"] == st["sends_failed_connection"] == 1
    assert st["connections_refused"] == 1 and st["connections_opened"] == 0
    assert any(f"refused {LOCAL}:{port} (connect_failed)" in r.getMessage() for r in caplog.records)


def test_an_oversize_message_cuts_the_connection(node_factory):
    events = Events()
    rx = node_factory(synchronous=False, max_msg_size=1000, on_event=events)
    sock = connect(rx.port)
    try:
        sock.sendall(wire.handshake(free_port()) + wire.header(None, 1, 2000, 0))
        ev = events.wait_for("disconnected", "message_too_large")
        assert wait_closed(sock, 5)
    finally:
        sock.close()
    assert ev.error == "CH_EMSGSIZE" and "max_msg_size is 1000" in ev.detail
    assert [k for k, _ in events.kinds()] == ["connected", "disconnected"]


def test_garbage_before_the_handshake_ends_is_refused_as_a_protocol_violation(node_factory):
    events = Events()
    rx = node_factory(synchronous=False, on_event=events)
    sock = connect(rx.port)
    try:
        # a handshake, then a message header with an impossible length field
        send_quietly(sock, wire.handshake(free_port()) + b"\xff" * 27)
        ev = wait_until(
            lambda: next((e for e in events if e.reason == "protocol"), None),
            10,
            "a protocol event",
        )
    finally:
        sock.close()
    assert ev.error == "CH_EPROTO" and ev.kind in ("disconnected", "refused")
    assert rx.stats()["connections_refused"] + rx.stats()["connections_closed"] >= 1


def test_closing_the_node_disconnects_its_peers(node_factory):
    events = Events()
    a = node_factory(synchronous=False, on_event=events)
    b = node_factory(synchronous=False)
    a.send(addr(b), b"x")
    assert b.recv(timeout=5).data == b"x"
    events.wait_for("connected")
    a.close()
    assert events.kinds()[-1] == ("disconnected", "node_closed")
    with pytest.raises(chirp.ClosedError):
        a.stats()


def test_stats_and_peers_count_what_was_sent(node_factory):
    rx = node_factory(synchronous=False)
    tx = node_factory(synchronous=True)
    n, size = 200, 100
    futs = [tx.send_async(addr(rx), b"x" * size, header=b"hh") for _ in range(n)]
    recv_n(rx, n)
    for f in futs:
        f.result(timeout=10)
    st_tx, st_rx = tx.stats(), rx.stats()
    assert st_tx["messages_sent"] == n and st_tx["bytes_sent"] == n * (size + 2)
    assert st_tx["messages_acknowledged"] == n and st_tx["sends_failed"] == 0
    assert st_rx["messages_received"] == n and st_rx["bytes_received"] == n * (size + 2)
    assert st_tx["connections_opened"] == st_tx["connections_ready"] == 1
    assert st_rx["slots_in_use"] == 0
    (p,) = tx.peers()
    assert (p.address, p.port, p.identity) == (LOCAL, rx.port, rx.identity)
    assert p.connected and not p.encrypted and p.connections == 1
    assert (p.sent, p.received, p.inflight, p.queued) == (n, 0, 0, 0)
    assert p.connected_for >= 0
    (q,) = rx.peers()
    assert (q.port, q.received, q.sent) == (tx.port, n, 0)  # acknowledgements are not messages


def test_slots_held_by_the_application_are_in_the_stats(node_factory):
    rx = node_factory(synchronous=False, auto_release=False)
    tx = node_factory(synchronous=False)
    for i in range(3):
        tx.send(addr(rx), b"%d" % i)
    msgs = recv_n(rx, 3, release=False)
    assert rx.stats()["slots_in_use"] == 3
    for m in msgs:
        m.release()
    wait_until(lambda: rx.stats()["slots_in_use"] == 0, 5, "the slots back")


def test_a_failing_on_event_is_logged_and_costs_nothing(node_factory, caplog):
    def bad(ev):
        raise RuntimeError("observer bug")

    rx = node_factory(synchronous=False)
    tx = node_factory(synchronous=True, on_event=bad)
    with caplog.at_level(logging.ERROR, logger="chirp"):
        fut = tx.send_async(addr(rx), b"still works")
        assert rx.recv(timeout=5).data == b"still works"
        assert fut.result(timeout=5) is None
        wait_until(lambda: "observer bug" in caplog.text, 5, "the callback's error logged")
    assert "on_event raised for PeerEvent(kind='connected'" in caplog.text


def test_on_event_must_be_callable():
    with pytest.raises(TypeError, match="on_event must be callable, got int"):
        chirp.Node(port=0, on_event=3)  # type: ignore[arg-type]


def test_events_as_an_async_iterator(node_factory):
    a = node_factory(synchronous=False)
    b = node_factory(synchronous=False)

    async def main():
        seen = []

        async def watch():
            async for ev in a.events():
                seen.append((ev.kind, ev.reason))
            return seen

        watcher = asyncio.ensure_future(watch())
        await asyncio.sleep(0.05)  # it subscribed
        await a.asend(addr(b), b"hi")
        assert (await b.arecv(timeout=5)).data == b"hi"
        while ("connected", None) not in seen:
            await asyncio.sleep(0.01)
        await a.aclose()
        return await asyncio.wait_for(watcher, 5)  # ends with the node

    seen = asyncio.run(main())
    assert seen[0] == ("connected", None) and seen[-1] == ("disconnected", "node_closed")


def test_every_reason_of_the_core_has_a_name():
    from chirp import _observe
    from chirp._chirp import lib

    codes = {getattr(lib, n) for n in dir(lib) if n.startswith("CH_REASON_")}
    assert codes == set(_observe.REASONS)


def test_a_connection_cut_short_by_the_own_close_is_not_a_warning(caplog):
    """A connection still being set up when its own node closes (e.g. a
    program that ends without close()) is refused with reason
    node_closed: logged at INFO, not as a warning at every exit; other
    refusals stay warnings."""
    import logging

    from chirp import _observe
    from chirp.events import PeerEvent

    def ev(reason: str) -> PeerEvent:
        return PeerEvent("refused", "127.0.0.1", 1, None, False, True, reason, "x", "CH_ECLOSED")

    with caplog.at_level(logging.INFO, logger="chirp"):
        _observe._log(ev("node_closed"))
        _observe._log(ev("tls"))
    levels = {r.getMessage().split(" (")[1].split(")")[0]: r.levelno for r in caplog.records}
    assert levels == {"node_closed": logging.INFO, "tls": logging.WARNING}, caplog.text
