"""Node.post(): a send with no Future.  Messages arrive as with send_async;
a failure is never silent: it is logged on the chirp logger and counted
in stats(); what can be known at once raises at once."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest
from support.nodes import addr

import chirp


def _receive(node, n, timeout=10.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            got += [m.data for m in node.recv_many(n - len(got), timeout=0.5)]
        except chirp.ChirpTimeoutError:
            pass
    return got


@pytest.mark.parametrize("sync", [False, True])
def test_posted_messages_arrive_in_order(node_factory, sync):
    rx = node_factory(synchronous=False)
    tx = node_factory(synchronous=sync)
    datas = [b"p%d" % i for i in range(2000)]
    for d in datas:
        assert tx.post(addr(rx), d) is None
    assert _receive(rx, len(datas)) == datas
    deadline = time.monotonic() + 5
    while tx.stats()["messages_sent"] < len(datas) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tx.stats()["sends_failed"] == 0


def test_a_failed_post_is_logged_and_counted(node_factory, caplog):
    """Synchronous: a post whose acknowledgement never comes (the
    receiver holds it) fails at the timeout, on the fast path (the address
    is known) -- logged and counted, not lost in silence."""
    rx = node_factory(synchronous=False, auto_release=False, max_slots=1)
    tx = node_factory(synchronous=True, timeout=0.5)
    warm = tx.send_async(addr(rx), b"warm")  # the address is cached now
    rx.recv(timeout=5.0).release()
    assert warm.result(timeout=5.0) is None
    with caplog.at_level(logging.WARNING, logger="chirp"):
        tx.post(addr(rx), b"held")
        held = rx.recv(timeout=5.0)  # and never released
        deadline = time.monotonic() + 5
        while tx.stats()["sends_failed"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the pump logs it
    assert tx.stats()["sends_failed"] == 1
    posted = [r for r in caplog.records if "a posted message failed" in r.getMessage()]
    assert posted and "no acknowledgement" in posted[0].getMessage(), caplog.text
    held.release()


def test_a_post_to_nowhere_is_logged(node_factory, caplog):
    """The general path (an address not yet known) logs the same way."""
    tx = node_factory(synchronous=False, timeout=2.0)
    with caplog.at_level(logging.WARNING, logger="chirp"):
        tx.post(("127.0.0.1", 1), b"nobody")
        deadline = time.monotonic() + 5
        while "a posted message failed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "a posted message failed" in caplog.text and "connect failed" in caplog.text


def test_what_is_known_at_once_raises(node_factory):
    tx = node_factory()
    with pytest.raises(TypeError):
        tx.post(("127.0.0.1", 1), "text")  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        tx.post("nowhere", b"x")  # type: ignore[arg-type]
    tx.close()
    with pytest.raises(chirp.ClosedError):
        tx.post(("127.0.0.1", 1), b"x")


def test_posts_to_a_stalled_receiver_are_bounded(node_factory, caplog):
    """A receiver that takes nothing: the posts not yet done never pass the
    high-water mark (memory stays bounded); the ones that time out fail,
    counted and logged, and make room for more.  A post that found no room
    within the timeout raises, saying that it was not queued."""
    rx = node_factory(synchronous=False, auto_release=False, max_slots=1)
    tx = node_factory(synchronous=False, timeout=1.0)
    tx.send(addr(rx), b"warm")
    hwm = chirp._chirp.lib.CH_POST_HWM
    payload = b"x" * 64
    pending = []
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="chirp"):
        while time.monotonic() - started < 3.0:
            for _ in range(10_000):
                try:
                    tx.post(addr(rx), payload)
                except chirp.ChirpTimeoutError as e:
                    assert "was not queued" in str(e)
            pending.append(tx.stats()["posts_pending"])
        deadline = time.monotonic() + 5
        while "posted messages failed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert hwm - 10_000 < max(pending) <= hwm, pending  # sampled each 10,000
    failures = [r for r in caplog.records if "posted message" in r.getMessage()]
    assert len(failures) <= 10, len(failures)  # at most one a second
    assert tx.stats()["sends_failed"] > 0
    assert "posted messages failed" in caplog.text and "timed out" in caplog.text


def test_a_blocked_post_goes_on_when_the_receiver_reads(node_factory):
    """post() waits at the high-water mark and goes on when the receiver
    starts reading: every message arrives, in order, none fails."""
    rx = node_factory(synchronous=False)
    tx = node_factory(synchronous=False, timeout=30.0)
    tx.send(addr(rx), b"warm")
    assert rx.recv(timeout=5.0).data == b"warm"
    hwm = chirp._chirp.lib.CH_POST_HWM
    n = 6 * hwm  # more than the mark and the socket buffers hold
    peak = []

    def poster():
        for i in range(n):
            tx.post(addr(rx), i.to_bytes(4, "big"))
            if i % 20_000 == 0:
                peak.append(tx.stats()["posts_pending"])

    t = threading.Thread(target=poster)
    t.start()
    time.sleep(1.0)  # nobody reads meanwhile: the poster waits at the mark
    held_back = t.is_alive()
    stuck = tx.stats()["posts_pending"]
    got = []
    while len(got) < n:
        got += [int.from_bytes(m.data, "big") for m in rx.recv_many(4096, timeout=10.0)]
    t.join(30)
    assert not t.is_alive()
    assert held_back and stuck > hwm // 2, stuck
    assert got == list(range(n))
    assert max(peak) <= hwm
    assert tx.stats()["sends_failed"] == 0


def test_close_wakes_a_blocked_post(node_factory, caplog):
    """A post() waiting at the mark raises ClosedError when another thread
    closes the node, at once, not after the timeout; the posts left are
    told as the close's losses, not one warning per batch."""
    rx = node_factory(synchronous=False, auto_release=False, max_slots=1)
    tx = node_factory(synchronous=False, timeout=60.0)
    tx.send(addr(rx), b"warm")
    hwm = chirp._chirp.lib.CH_POST_HWM
    errors = []

    def poster():
        try:
            while True:
                tx.post(addr(rx), b"y" * 64)
        except chirp.ClosedError as e:
            errors.append(e)

    t = threading.Thread(target=poster)
    t.start()
    deadline = time.monotonic() + 30
    while tx.stats()["posts_pending"] < hwm:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="chirp"):
        tx.close(linger=0)
        t.join(10)
    assert not t.is_alive() and errors
    assert time.monotonic() - started < 10
    assert "posted messages failed" not in caplog.text


CTRL_C = """
import os, signal, threading, time, chirp
rx = chirp.Node(port=0, synchronous=False, auto_release=False, max_slots=1,
                disable_encryption=True, bind_v6="")
tx = chirp.Node(port=0, synchronous=False, timeout=30.0, disable_encryption=True, bind_v6="")
to = ("127.0.0.1", rx.port)
tx.send(to, b"warm")
def interrupt():
    while tx.stats()["posts_pending"] < chirp._chirp.lib.CH_POST_HWM:
        time.sleep(0.05)
    time.sleep(0.5)  # the main thread waits in post() now
    print("SIGINT", flush=True)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt, daemon=True).start()
try:
    while True:
        tx.post(to, b"y" * 64)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
tx.close(linger=0)
rx.close()
"""


def test_ctrl_c_ends_a_post_waiting_at_the_mark():
    """Regression: post() waited at the high-water mark in one C call for
    the whole timeout (30 s here), so Ctrl-C was seen only then.  It waits
    in slices now: the KeyboardInterrupt comes at once."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", CTRL_C], capture_output=True, text=True, timeout=120
    )
    took = time.monotonic() - started
    assert "SIGINT" in proc.stdout and "KeyboardInterrupt" in proc.stdout, proc.stderr[-2000:]
    assert took < 20, took
