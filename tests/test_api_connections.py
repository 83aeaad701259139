"""Connections: IPv6, idle collection, reconnects, NOOP probes, reuse."""

import socket
import time

import pytest
from support import wire
from support.net import LOCAL
from support.nodes import addr, roundtrip
from support.raw import SilentPeer
from support.waits import run_in_thread


def _ipv6_loopback_works():
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback_works(), reason="no IPv6 loopback on this host")


@needs_ipv6
@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_ipv6_loopback_send_and_reply(node_factory, sync):
    rx = node_factory(synchronous=sync)
    tx = node_factory(synchronous=sync)
    fut = tx.send_async(("::1", rx.port), b"over v6", header=b"6")
    msg = rx.recv(timeout=5.0)
    assert msg.data == b"over v6" and msg.header == b"6"
    assert msg.address == "::1"
    assert msg.port == tx.port
    assert msg.remote_identity == tx.identity
    msg.release()
    assert fut.result(timeout=5.0) is None
    # a reply goes back to ("::1", tx.port)
    t0 = time.monotonic()
    ans_fut = tx.request_async(("::1", rx.port), b"question")
    q = rx.recv(timeout=5.0)
    rx.reply(q, b"answer")
    q.release()
    ans = ans_fut.result(timeout=10.0)
    assert ans.data == b"answer" and ans.address == "::1"
    assert time.monotonic() - t0 < 10.0


@needs_ipv6
def test_ipv6_only_node(node_factory):
    rx = node_factory(bind_v4="", bind_v6="::1", synchronous=False)
    tx = node_factory(synchronous=False)
    tx.send(("::1", rx.port), b"v6 only")
    assert rx.recv(timeout=5.0).data == b"v6 only"


def test_ipv4_only_node(node_factory):
    rx = node_factory(bind_v6="", bind_v4="127.0.0.1", synchronous=False)
    tx = node_factory(synchronous=False)
    tx.send((LOCAL, rx.port), b"v4 only")
    assert rx.recv(timeout=5.0).data == b"v4 only"


def test_both_binds_empty_rejected(node_factory):
    with pytest.raises(ValueError):
        n = node_factory(bind_v4="", bind_v6="")
        n.close()


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_send_after_idle_collection_reconnects(node_factory, sync):
    """Idle connections are closed after max(reuse_time, 3*timeout); the
    next send opens a new one transparently."""
    rx = node_factory(synchronous=sync, timeout=0.2, reuse_time=0.5)
    tx = node_factory(synchronous=sync, timeout=0.2, reuse_time=0.5)
    assert roundtrip(tx, rx, b"one").data == b"one"
    time.sleep(1.5)  # let the idle connection be collected (setup)
    assert roundtrip(tx, rx, b"two").data == b"two"
    assert roundtrip(rx, tx, b"three").data == b"three"


def test_idle_incoming_connection_is_closed(node_factory):
    """A raw peer that completes the handshake and then stays silent is
    disconnected after about max(reuse_time, 3*timeout)."""
    node = node_factory(timeout=0.2, reuse_time=1.0)
    s = socket.create_connection(addr(node), timeout=5)
    try:
        s.sendall(wire.handshake(40010, b"I" * 16))
        t0 = time.monotonic()
        s.settimeout(10.0)
        buf = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            except TimeoutError:
                raise AssertionError("idle connection not closed in 10 s") from None
            if not chunk:
                break
            buf += chunk
        took = time.monotonic() - t0
        assert took >= 0.5, f"closed too early ({took:.2f} s)"
        assert buf[:18] == wire.handshake(node.port, node.identity)
    finally:
        s.close()


def _wait_frames(peer, done, timeout=5.0):
    """((port, identity), frames) the raw peer got, once done(frames); the
    capability frame is among them."""
    deadline = time.monotonic() + timeout
    while True:
        hs, frames = wire.parse_stream(bytes(peer.received), capabilities=True)
        if done(frames):
            return hs, frames
        assert time.monotonic() < deadline, frames
        time.sleep(0.02)


def test_noop_probe_before_message_after_idle(node_factory):
    """After more than 3/4 of reuse_time without traffic, a message is
    preceded by a NOOP; serials count the NOOP too (wire level)."""
    peer = SilentPeer(identity=b"N" * 16)
    try:
        node = node_factory(synchronous=False, timeout=0.2, reuse_time=4.0)
        node.send(peer.address, b"first")
        time.sleep(3.4)  # > 3/4 of reuse_time, < reuse_time (setup)
        node.send(peer.address, b"second")
        (port, ident), frames = _wait_frames(
            peer, lambda fs: any(f["data"] == b"second" for f in fs)
        )
        assert (port, ident) == (node.port, node.identity)
        cap, frames = frames[0], frames[1:]
        assert wire.decode_capability(cap["identity"], cap["type"]) == (1, wire.CAP_REJECT, 64)
        assert cap["serial"] == 1
        kinds = [(f["type"], f["data"], f["serial"]) for f in frames]
        assert kinds == [(0, b"first", 2), (wire.NOOP, b"", 3), (0, b"second", 4)]
        noop = frames[1]
        assert noop["header"] == b"" and noop["data"] == b""
        assert wire.decode_capability(noop["identity"], noop["type"]) is None
    finally:
        peer.close()


def test_no_noop_when_busy(node_factory):
    peer = SilentPeer(identity=b"B" * 16)
    try:
        node = node_factory(synchronous=False, timeout=0.2, reuse_time=4.0)
        for i in range(5):
            node.send(peer.address, b"m%d" % i)
        _, frames = _wait_frames(peer, lambda fs: len(fs) >= 6)
        assert wire.decode_capability(frames[0]["identity"], frames[0]["type"]) is not None
        frames = frames[1:]
        assert [f["type"] for f in frames] == [0] * 5
        assert [f["serial"] for f in frames] == [2, 3, 4, 5, 6]
        assert len({f["identity"] for f in frames}) == 5
    finally:
        peer.close()


def test_outgoing_connection_reused_for_incoming_direction(node_factory):
    """When the raw peer's listening port is the one it announced, the node
    uses the existing (outgoing) connection for everything: the raw listener
    never sees a second connection even when the node has more to send."""
    peer = SilentPeer(identity=b"U" * 16)
    try:
        node = node_factory(synchronous=False)
        for i in range(3):
            node.send(peer.address, b"x%d" % i)
        _wait_frames(peer, lambda fs: len(fs) >= 3)
        assert len(peer.conns) == 1
    finally:
        peer.close()


def test_two_nodes_talk_both_ways_many_times(node_factory):
    a = node_factory(synchronous=True)
    b = node_factory(synchronous=True)
    for i in range(50):
        assert roundtrip(a, b, b"a%d" % i).remote_identity == a.identity
        assert roundtrip(b, a, b"b%d" % i).remote_identity == b.identity


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_simultaneous_first_contact_keeps_order(node_factory, sync):
    """Two fresh nodes start sending to each other at the same moment, so
    both open a connection (the connect race in docs/protocol.md).
    Every message arrives exactly once, in the order sent, and every send
    succeeds -- in each of many trials."""
    import threading

    n = 200
    problems = []
    for trial in range(30):
        a = node_factory(synchronous=sync, timeout=5.0)
        b = node_factory(synchronous=sync, timeout=5.0)
        try:
            barrier = threading.Barrier(2)
            futs = {}

            def spray(src, dst, key, barrier=barrier, futs=futs):
                barrier.wait(timeout=5)
                futs[key] = [src.send_async(addr(dst), key + b"%04d" % i) for i in range(n)]

            ts = [
                threading.Thread(target=spray, args=(a, b, b"A"), daemon=True),
                threading.Thread(target=spray, args=(b, a, b"B"), daemon=True),
            ]
            for t in ts:
                t.start()
            for node, key in ((b, b"A"), (a, b"B")):
                got = []
                for _ in range(n):
                    m = node.recv(timeout=10.0)
                    got.append(m.data)
                    m.release()
                expected = [key + b"%04d" % i for i in range(n)]
                if got != expected:
                    first = next(
                        i for i, (x, y) in enumerate(zip(got, expected, strict=False)) if x != y
                    )
                    problems.append(
                        f"trial {trial} {key.decode()}: sorted={sorted(got) == expected}, "
                        f"first difference at {first}: {got[first - 1 : first + 3]}"
                    )
            for t in ts:
                t.join(timeout=10)
            for f in futs[b"A"] + futs[b"B"]:
                assert f.result(timeout=15.0) is None
        finally:
            a.close()
            b.close()
    assert not problems, f"{len(problems)} reordered streams, e.g. {problems[:3]}"


def test_reply_after_idle_collection_reconnects(node_factory):
    """The request's connection is collected while the answer is being
    prepared; the reply opens a new connection to the sender's listening
    port and still resolves the request."""
    server = node_factory(synchronous=False, timeout=0.2, reuse_time=0.5)
    client = node_factory(synchronous=False, timeout=0.2, reuse_time=0.5)
    t, box = run_in_thread(client.request, addr(server), b"slow question", timeout=10.0)
    msg = server.recv(timeout=5.0)
    msg.release()
    time.sleep(1.5)  # both sides collect the idle connection (setup)
    server.reply(msg, b"slow answer")
    t.join(timeout=10.0)
    assert not t.is_alive()
    assert "error" not in box, box.get("error")
    assert box["result"].data == b"slow answer"
    assert box["result"].identity == msg.identity
