"""Flood: a node that holds every slot (auto_release=False, max_slots=4, four
messages received and not released) stops reading that connection; TCP then
throttles the sender, whose writes stop making progress, while the node's
memory stays flat and it keeps serving others.  Releasing lets the flow
resume."""

import select
import threading
import time

import pytest
from support import wire
from support.raw import connect, recv_exact
from support.waits import wait_until

from .kit import echo_roundtrip

pytestmark = pytest.mark.hang_limit(90)

SLOTS = 4
MSG = 1024
STALL = 1.0  # no progress for this long = throttled
FLAT_LIMIT_KIB = 5 * 1024


class RawFlooder:
    """Writes valid 1 KiB frames as fast as a non-blocking socket takes them."""

    def __init__(self, port):
        self.sock = connect(port)
        self.sock.sendall(wire.handshake(10600))
        recv_exact(self.sock, 18)
        self.sock.setblocking(False)
        self.sent = 0
        self.last_progress = time.monotonic()
        self.error = None
        self.stop = threading.Event()
        serial = iter(range(1, 1 << 31))
        self.chunk = b"".join(wire.message(None, next(serial), b"f" * MSG) for _ in range(64))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf, off = self.chunk, 0
        try:
            while not self.stop.is_set():
                try:
                    n = self.sock.send(buf[off:])
                except BlockingIOError:
                    select.select([], [self.sock], [], 0.05)
                    continue
                self.sent += n
                self.last_progress = time.monotonic()
                off = (off + n) % len(buf)
        except OSError as e:
            if not self.stop.is_set():
                self.error = e

    def stalled_for(self):
        return time.monotonic() - self.last_progress

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def sample_rss(host, n=7, every=0.5):
    samples = []
    for _ in range(n):
        samples.append(host.rss_kib())
        time.sleep(every)
    return samples


def check_throttled_and_flat(host, good_peer, progress, stalled_for, base_rss, label):
    """Shared middle part: the sender is throttled, RSS is flat, others served."""
    # all four slots taken, then the sender runs into the wall
    wait_until(lambda: host.count() >= SLOTS, 10, "four messages to arrive", interval=0.05)
    wait_until(
        lambda: stalled_for() > STALL,
        20,
        lambda: f"{label}: the sender to be throttled ({progress()} bytes/messages through)",
        interval=0.05,
    )
    before = progress()
    samples = sample_rss(host)  # ~3.5 s, well after the first second
    after = progress()
    took = echo_roundtrip(good_peer, host.addr, timeout=3.0)
    print(
        f"\n{label}: throttled after {before}; RSS base {base_rss} KiB, "
        f"samples {samples} KiB (spread {max(samples) - min(samples)} KiB); "
        f"good peer round trip {took * 1000:.1f} ms"
    )
    assert after == before, f"{label}: sender kept making progress ({before} -> {after})"
    assert host.count() == SLOTS, "more messages delivered than slots"
    assert int(host.cmd("held")) == SLOTS
    assert max(samples) - min(samples) < FLAT_LIMIT_KIB
    assert max(samples) - base_rss < 2 * FLAT_LIMIT_KIB
    assert took < 3.0


def release_and_resume(host, progress):
    """Release the four held messages: four more arrive (and are held).
    Then let the node drain everything: the sender gets going again."""
    start = progress()
    assert int(host.cmd("release")) == SLOTS
    wait_until(lambda: host.count() >= 2 * SLOTS, 5, "messages after release", interval=0.05)
    assert int(host.cmd("held")) == SLOTS
    host.cmd("drain")
    wait_until(
        lambda: progress() > start and host.count() > 20 * SLOTS,
        10,
        "the flow to resume after release",
        interval=0.05,
    )
    time.sleep(0.5)
    print(f"after release: {host.count()} delivered; progress {start} -> {progress()}")


def test_raw_flood_is_throttled(make_host, good_peer):
    host = make_host(synchronous=False, auto_release=False, max_slots=SLOTS, timeout=5.0)
    echo_roundtrip(good_peer, host.addr)
    time.sleep(0.3)
    base = host.rss_kib()
    fl = RawFlooder(host.port)
    try:
        check_throttled_and_flat(
            host, good_peer, lambda: fl.sent, fl.stalled_for, base, "raw flood (bytes)"
        )
        release_and_resume(host, lambda: fl.sent)
        assert fl.error is None, fl.error
        assert host.alive
    finally:
        fl.close()
    echo_roundtrip(good_peer, host.addr, timeout=3.0)


def test_chirp_sender_flood_is_throttled(node_factory, make_host):
    host = make_host(synchronous=False, auto_release=False, max_slots=SLOTS, timeout=5.0)
    good = node_factory(synchronous=True, timeout=5.0)
    # a long send timeout: queued messages must stay pending, not time out
    sender = node_factory(synchronous=False, timeout=60.0, max_msg_size=1 << 20)
    echo_roundtrip(good, host.addr)
    time.sleep(0.3)
    base = host.rss_kib()
    done = [0]
    last = [time.monotonic()]
    lock = threading.Lock()

    def on_done(fut):
        with lock:
            done[0] += 1
            last[0] = time.monotonic()

    payload = b"c" * MSG
    futs = []
    try:
        for _ in range(20000):
            f = sender.send_async(host.addr, payload)
            f.add_done_callback(on_done)
            futs.append(f)
        check_throttled_and_flat(
            host,
            good,
            lambda: done[0],
            lambda: time.monotonic() - last[0],
            base,
            "chirp send_async flood (futures done)",
        )
        pending = sum(1 for f in futs if not f.done())
        print(f"{pending} of {len(futs)} send futures pending")
        assert pending > 0
        release_and_resume(host, lambda: done[0])
        # nothing lost: every queued message arrives and every send succeeds
        wait_until(
            lambda: host.count() == len(futs),
            20,
            lambda: f"every message to arrive ({host.count()} did)",
            interval=0.05,
        )
        wait_until(lambda: done[0] == len(futs), 10, "every send to complete", interval=0.05)
        failed = [f.exception() for f in futs if f.exception() is not None]
        assert not failed, failed[:3]
    finally:
        host.close()  # first, so the sender's queue fails fast instead of draining
        sender.close()
    errs = {type(f.exception(timeout=10)).__name__ for f in futs if f.exception(timeout=10)}
    print("after the receiver went away, pending sends ended with:", errs or "success")
    assert all(f.done() for f in futs), "some sends never completed"
