"""Slowloris: peers that never finish (or finish too late) their 18-byte
handshake are closed after the connect timeout, min(2 x timeout, 60 s), no
matter how many bytes trickle in; a good peer is served meanwhile."""

import os
import selectors
import threading
import time

import pytest
from support import wire
from support.net import LOCAL
from support.raw import connect, is_closed_now

pytestmark = pytest.mark.hang_limit(90)

TIMEOUT = 0.5  # node timeout -> connect timeout 1.0 s
CONNECT_TIMEOUT = 2 * TIMEOUT
EARLIEST = 0.8  # closing before this would be too eager
LATEST = 3.0  # closing after this means the deadline is not enforced
TRICKLE_EVERY = 0.2


class Hostile:
    """One raw connection and its plan: bytes to send at given offsets."""

    def __init__(self, name, port, plan):
        self.name = name
        # taken before connecting: the node's own clock for this connection
        # starts later, so a late scheduling of this thread can only make the
        # measured lifetime longer, never shorter
        self.t0 = time.monotonic()
        self.sock = connect(port)
        self.sock.setblocking(False)
        self.plan = sorted(plan)  # [(offset_seconds, bytes)]
        self.closed_at = None
        self.sent = 0

    def due(self, now):
        out = b""
        while self.plan and self.t0 + self.plan[0][0] <= now:
            out += self.plan.pop(0)[1]
        return out


def drive(hostiles, limit):
    """Send each plan and note when the node closes each socket."""
    sel = selectors.DefaultSelector()
    for h in hostiles:
        sel.register(h.sock, selectors.EVENT_READ, h)
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline and any(h.closed_at is None for h in hostiles):
            now = time.monotonic()
            for h in hostiles:
                if h.closed_at is not None:
                    continue
                data = h.due(now)
                if data:
                    try:
                        h.sent += h.sock.send(data)
                    except (BrokenPipeError, ConnectionResetError):
                        h.closed_at = time.monotonic() - h.t0
            for key, _ in sel.select(timeout=0.02):
                h = key.data
                if h.closed_at is None and is_closed_now(h.sock):
                    h.closed_at = time.monotonic() - h.t0
                    sel.unregister(h.sock)
    finally:
        sel.close()


def test_slowloris_handshakes_are_cut_off(node_factory, good_peer):
    node = node_factory(timeout=TIMEOUT, synchronous=False)
    target = (LOCAL, node.port)
    hs = [wire.handshake(10000 + i) for i in range(40)]
    hostiles = []
    try:
        for i in range(10):  # one byte every 0.2 s: 3.4 s for 18 bytes
            plan = [(k * TRICKLE_EVERY, hs[i][k : k + 1]) for k in range(18)]
            hostiles.append(Hostile(f"trickle{i}", node.port, plan))
        for i in range(10, 20):  # connect and say nothing
            hostiles.append(Hostile(f"silent{i}", node.port, []))
        for i in range(20, 25):  # 17 bytes at once, never the last one
            hostiles.append(Hostile(f"partial{i}", node.port, [(0.0, hs[i][:17])]))
        for i in range(25, 30):  # 17 bytes at once, the last one after the deadline
            plan = [(0.0, hs[i][:17]), (CONNECT_TIMEOUT + 0.4, hs[i][17:])]
            hostiles.append(Hostile(f"late{i}", node.port, plan))

        # a good peer exchanges request/replies all the while
        stop = threading.Event()
        served, errors, worst = [0], [], [0.0]

        def serve():
            while not stop.is_set():
                try:
                    m = node.recv(timeout=0.1)
                except TimeoutError:
                    continue
                node.reply(m, m.data)

        def client():
            while not stop.is_set():
                data = os.urandom(64)
                t = time.monotonic()
                try:
                    r = good_peer.request(target, data, timeout=3.0)
                    assert r.data == data
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))
                    return
                worst[0] = max(worst[0], time.monotonic() - t)
                served[0] += 1
                time.sleep(0.02)

        threads = [threading.Thread(target=f, daemon=True) for f in (serve, client)]
        for t in threads:
            t.start()
        try:
            drive(hostiles, limit=LATEST + 1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)

        report = {
            h.name: (None if h.closed_at is None else round(h.closed_at, 2), h.sent)
            for h in hostiles
        }
        print("closed after (s), bytes sent:", report)
        print(f"good peer: {served[0]} round trips, worst {worst[0] * 1000:.0f} ms")
        for h in hostiles:
            assert h.closed_at is not None, f"{h.name} not closed within {LATEST + 1} s"
            assert EARLIEST <= h.closed_at <= LATEST, f"{h.name} closed after {h.closed_at:.2f} s"
            if h.name.startswith("trickle"):
                assert h.sent < 18, f"{h.name} completed its handshake ({h.sent} bytes)"
        assert not errors, errors
        assert served[0] >= 10
        assert worst[0] < 1.0
    finally:
        for h in hostiles:
            h.sock.close()
    # and after all that, the node still serves a new good peer
    late = node_factory(synchronous=True, timeout=5.0)
    fut = late.send_async(target, b"after")  # synchronous: done once released
    m = node.recv(timeout=5)
    assert m.data == b"after" and m.remote_identity == late.identity
    fut.result(timeout=5)


def test_trickled_handshake_within_deadline_is_accepted(node_factory):
    """Control: the same trickle, fast enough to end before the deadline, is
    a valid peer (so the cut-off above is about time, not fragmentation)."""
    node = node_factory(timeout=TIMEOUT, synchronous=False)
    s = connect(node.port)
    try:
        hs = wire.handshake(10999)
        t0 = time.monotonic()
        for k in range(18):  # 18 separate bytes over ~0.2 s
            s.send(hs[k : k + 1])
            time.sleep(0.01)
        s.sendall(wire.message(None, 1, b"ok"))
        m = node.recv(timeout=3)
        assert m.data == b"ok" and m.port == 10999
        assert time.monotonic() - t0 < CONNECT_TIMEOUT + 0.5
        time.sleep(CONNECT_TIMEOUT + 0.3)
        assert not is_closed_now(s), "a connection with a complete handshake was cut off"
    finally:
        s.close()
