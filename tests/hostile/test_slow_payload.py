"""A peer announces a max_msg_size message and then trickles its payload:
the node keeps serving others and holds at most one max_msg_size buffer for
that connection; when the payload is complete it is delivered intact and the
buffer is given back."""

import hashlib
import os
import select
import time

import pytest
from support import wire
from support.raw import connect, recv_exact

from .kit import echo_roundtrip

pytestmark = pytest.mark.hang_limit(90)

MAX = 1 << 20
PEERS = 4
FAST_PART = MAX // 2  # sent at once; the rest trickles
TRICKLE = 1024
TRICKLE_EVERY = 0.1
TRICKLE_FOR = 2.5


def test_trickled_max_size_payloads(make_host, good_peer, sockets):
    host = make_host(synchronous=False, max_msg_size=MAX, timeout=5.0)
    echo_roundtrip(good_peer, host.addr)
    time.sleep(0.3)
    rss0, heap0 = host.rss_kib(), int(host.cmd("heap"))

    payloads = [os.urandom(MAX) for _ in range(PEERS)]
    offsets = []
    for i, data in enumerate(payloads):
        s = connect(host.port)
        sockets.append(s)
        s.sendall(wire.handshake(10700 + i))
        recv_exact(s, 18)
        s.sendall(wire.header(None, 1, MAX, 0) + data[:FAST_PART])
        offsets.append(FAST_PART)

    # trickle, while a good peer is served
    trips = []
    t_end = time.monotonic() + TRICKLE_FOR
    while time.monotonic() < t_end:
        for i, s in enumerate(sockets):
            s.sendall(payloads[i][offsets[i] : offsets[i] + TRICKLE])
            offsets[i] += TRICKLE
        trips.append(echo_roundtrip(good_peer, host.addr, timeout=2.0))
        time.sleep(TRICKLE_EVERY)
    time.sleep(0.3)
    rss1, heap1 = host.rss_kib(), int(host.cmd("heap"))
    assert host.count() == 0, "a partial message was delivered"
    for s in sockets:  # none was dropped
        r, _, _ = select.select([s], [], [], 0)
        assert not r or s.recv(1, 0) != b"", "node closed a slow but valid peer"
    print(
        f"\n{PEERS} peers, each {offsets[0]} of {MAX} bytes in: RSS {rss0} -> {rss1} KiB "
        f"(+{(rss1 - rss0) / 1024:.2f} MiB); malloc in use +{(heap1 - heap0) / 2**20:.2f} MiB; "
        f"good peer {len(trips)} round trips, worst {max(trips) * 1000:.1f} ms"
    )
    assert max(trips) < 2.0
    # at most one max_msg_size buffer per connection, plus a little
    assert rss1 - rss0 < PEERS * MAX // 1024 + 3 * 1024
    if heap0 >= 0:
        assert heap1 - heap0 < PEERS * (MAX + 256 * 1024)

    # complete them: all delivered intact, and the buffers are given back
    for i, s in enumerate(sockets):
        s.sendall(payloads[i][offsets[i] :])
    deadline = time.monotonic() + 10
    while host.count() < PEERS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert host.count() == PEERS
    digest = host.cmd("last").split()
    assert int(digest[0]) == MAX and digest[2] in {hashlib.sha256(p).hexdigest() for p in payloads}
    echo_roundtrip(good_peer, host.addr, timeout=2.0)
    time.sleep(0.3)
    heap2 = int(host.cmd("heap"))
    print(
        f"after delivery: RSS {host.rss_kib()} KiB; malloc in use +{(heap2 - heap0) / 1024:.0f} KiB"
    )
    if heap0 >= 0:
        assert heap2 - heap0 < PEERS * 256 * 1024, "message buffers not given back"
