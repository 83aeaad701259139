"""Closing with a linger (docs: Node.close): what is in flight when a node
closes, or when its program ends, completes as it would have, within a
bound, and whatever cannot fails with an error that says so."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from concurrent.futures import wait

import pytest
from support.child import run
from support.nodes import addr

import chirp

N = 20_000


class Counter:
    """Drains a node in a thread of its own, counting messages."""

    def __init__(self, node, expect: int, limit: float = 60.0):
        self.node, self.expect, self.got = node, expect, 0
        self.thread = threading.Thread(target=self._run, args=(limit,), daemon=True)
        self.thread.start()

    def _run(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        while self.got < self.expect and time.monotonic() < deadline:
            try:
                self.got += len(self.node.recv_many(256, timeout=0.2))
            except chirp.ChirpTimeoutError:
                pass
            except chirp.ClosedError:
                return

    def join(self, timeout: float = 60.0) -> int:
        self.thread.join(timeout)
        return self.got


def _program(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_a_program_that_ends_without_close_delivers_everything(node_factory, sync):
    """A sender process queues 20,000 x 100 B and ends without close():
    every message arrives, and the exit takes at most linger + 1 s."""
    rx = node_factory(synchronous=False)
    counter = Counter(rx, N)
    res = run(
        _program(f"""
            import time, chirp
            node = chirp.Node(port=0, disable_encryption=True, bind_v6="",
                              synchronous={sync}, timeout=5.0)
            for i in range({N}):
                node.send_async(("127.0.0.1", {rx.port}), b"m" * 100)
            print("queued", time.monotonic(), flush=True)
            """),
        timeout=60,
    )
    exited = time.monotonic()
    assert res.returncode == 0, res.describe()
    queued = float(res.stdout.split()[1])
    assert counter.join() == N
    assert exited - queued <= 5.0 + 1.0, f"the exit took {exited - queued:.2f} s"
    print(f"\n[linger] {N} of {N} delivered; exit {exited - queued:.3f} s after queueing")


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_close_with_a_live_peer_loses_nothing(node_factory, sync):
    rx = node_factory(synchronous=False)
    counter = Counter(rx, N)
    tx = node_factory(synchronous=sync)
    futs = [tx.send_async(addr(rx), b"m" * 100) for _ in range(N)]
    t0 = time.monotonic()
    tx.close()
    took = time.monotonic() - t0
    assert all(f.done() for f in futs)
    failed = [f.exception() for f in futs if f.exception() is not None]
    assert failed == [], failed[:3]
    assert counter.join() == N
    print(f"\n[linger] close() with {N} queued took {took:.3f} s; 0 failed")


@pytest.mark.parametrize("peer", ["silent", "blackhole"], ids=["stopped_reading", "black_holed"])
def test_close_with_a_dead_peer_returns_within_the_linger(
    node_factory, silent_peer, blackhole, peer
):
    """A peer that never acknowledges (synchronous sends stay in flight) or
    never answers the handshake (sends stay queued): close() returns within
    linger + 1 s and every unfinished send failed with ClosedError, saying
    that the linger ran out."""
    target = silent_peer.address if peer == "silent" else blackhole.address
    tx = node_factory(synchronous=True, timeout=30.0)
    futs = [tx.send_async(target, b"m" * 100) for _ in range(50)]
    time.sleep(0.3)
    t0 = time.monotonic()
    tx.close(linger=1.0)
    took = time.monotonic() - t0
    assert took <= 1.0 + 1.0, took
    assert all(f.done() for f in futs)
    errors = [f.exception() for f in futs]
    assert all(isinstance(e, chirp.ClosedError) for e in errors), errors[:3]
    assert all("linger" in str(e) for e in errors), errors[0]
    print(f"\n[linger] {peer}: close(linger=1.0) took {took:.2f} s, 50 of 50 failed: {errors[0]}")


def test_linger_zero_fails_what_is_pending_at_once(node_factory, silent_peer):
    tx = node_factory(synchronous=True, timeout=30.0)
    futs = [tx.send_async(silent_peer.address, b"m") for _ in range(10)]
    time.sleep(0.3)
    t0 = time.monotonic()
    tx.close(linger=0)
    assert time.monotonic() - t0 < 1.0
    assert all(isinstance(f.exception(timeout=0), chirp.ClosedError) for f in futs)


def test_the_exit_bound_holds_for_a_dead_peer_and_says_what_was_lost(blackhole):
    """A program whose node's sends cannot be delivered (the peer never
    answers) still exits within linger + 1 s, and chirp logs how many
    messages were lost and to whom."""
    t0 = time.monotonic()
    res = run(
        _program(f"""
            import logging, chirp
            logging.basicConfig(level=logging.WARNING)
            node = chirp.Node(port=0, disable_encryption=True, bind_v6="",
                              timeout=30.0, linger=1.0)
            for i in range(300):
                node.send_async(("127.0.0.1", {blackhole.port}), b"m" * 100)
            """),
        timeout=60,
    )
    took = time.monotonic() - t0
    assert res.returncode == 0, res.describe()
    assert took <= 1.0 + 1.0 + 1.0, took  # linger + 1 s, + the interpreter's start
    assert f"300 message(s) not delivered: 300 to 127.0.0.1:{blackhole.port}" in res.stderr
    print(f"\n[linger] exit with a black-holed peer after {took:.2f} s: {res.stderr.strip()}")


def test_a_message_held_at_close_is_not_acknowledged(node_factory):
    """Synchronous: a message received and not yet released when its node
    closes was never acknowledged, so its sender gets an error."""
    rx = node_factory(synchronous=False, auto_release=False)
    tx = node_factory(synchronous=True, timeout=5.0)
    fut = tx.send_async(addr(rx), b"held")
    msg = rx.recv(timeout=5.0)
    assert msg.data == b"held" and not fut.done()
    rx.close()
    with pytest.raises(chirp.ChirpError):
        fut.result(timeout=10)


def test_linger_is_checked(node_factory):
    with pytest.raises(ValueError, match="linger must be >= 0"):
        chirp.Config(linger=-1)
    with pytest.raises(TypeError, match="linger must be a number or None"):
        chirp.Config(linger="5")
    assert chirp.Config().linger is None and chirp.Config(linger=0).linger == 0
    node = node_factory()
    with pytest.raises(ValueError, match="linger"):
        node.close(linger=-0.5)
    assert not node.closed
    node.close(linger=2)
    assert node.closed


def test_many_sends_close_and_wait(node_factory):
    """close() with completions still arriving: every Future is done when
    close() returns (the pump handed them all out first)."""
    rx = node_factory(synchronous=False)
    counter = Counter(rx, 5000)
    tx = node_factory(synchronous=True)
    futs = [tx.send_async(addr(rx), b"x") for _ in range(5000)]
    tx.close()
    done, not_done = wait(futs, timeout=0)
    assert not not_done and len(done) == 5000
    assert counter.join() == 5000


def test_linger_zero_does_not_wait_for_a_stuck_write(node_factory):
    """Regression: a receiver that reads nothing leaves a write stuck in
    the kernel; close(linger=0) returned only after the whole timeout (20 s
    here), waiting for that write to drain.  It returns at once now."""
    rx = node_factory(synchronous=False, auto_release=False, max_slots=1)
    tx = node_factory(synchronous=False, timeout=20.0)
    target = ("127.0.0.1", rx.port)
    futs = [tx.send_async(target, b"y" * 64) for _ in range(150_000)]
    time.sleep(1.0)  # the socket buffers are full meanwhile
    assert not futs[-1].done()
    t0 = time.monotonic()
    tx.close(linger=0)
    took = time.monotonic() - t0
    assert took < 5.0, took
    assert isinstance(futs[-1].exception(timeout=0), chirp.ClosedError)
