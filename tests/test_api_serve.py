"""Handlers: serve() on worker threads and aserve() on asyncio.  Replies
match requests; a slow handler holds the sender back (bounded memory); a
handler that raises costs that message only; stop() and Ctrl-C end it."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys
import textwrap
import threading
import time

import pytest
from support.child import Child, ChildError
from support.net import LOCAL
from support.payloads import number_of, numbered
from support.peer import Peer
from support.waits import run_in_thread

import chirp


def _serving(node, handler, **kw):
    t = threading.Thread(target=node.serve, args=(handler,), kwargs=kw, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_serve_answers_a_requesting_process(node_factory, sync):
    node = node_factory(synchronous=sync)
    server = _serving(node, lambda msg: (msg.data, b"reply"), workers=4)
    n = 200
    peer = Peer("request", "--count", n, "--target", f"{LOCAL}:{node.port}",
                *([] if sync else ["--async"]))  # fmt: skip
    try:
        answers = [peer.read_json(30, kind="answer") for _ in range(n)]
        assert [a["num"] for a in answers] == list(range(n))
        assert all(a["header"] == b"reply".hex() for a in answers)
        assert peer.read_json(30, kind="done")["nerrors"] == 0
    finally:
        peer.close()
    node.stop()
    server.join(5)
    assert not server.is_alive()


def test_four_workers_run_at_once(node_factory, pair):
    node = node_factory(synchronous=False)
    running, most = [0], [0]
    lock = threading.Lock()

    def slow(msg):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return msg.data

    _serving(node, slow, workers=4)
    a, _ = pair
    futs = [a.request_async((LOCAL, node.port), numbered(i)) for i in range(40)]
    assert [number_of(f.result(timeout=30).data) for f in futs] == list(range(40))
    assert most[0] == 4, most
    node.stop()


def test_a_slow_handler_holds_the_sender_back(node_factory):
    """A sender process streams 1 MiB messages to a node whose handler is
    slow: the sender cannot run ahead (it is not done after 2 s), and this
    process takes in far less than was sent."""
    node = node_factory(synchronous=False, max_slots=4)
    handled = []
    _serving(node, lambda msg: handled.append(len(msg.data)) or time.sleep(0.05), workers=2)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peer = Peer("send", "--count", 400, "--size", 1 << 20, "--target",
                f"{LOCAL}:{node.port}", "--async", "--timeout", 60, "--lifetime", 120)  # fmt: skip
    try:
        time.sleep(2.0)
        with pytest.raises(ChildError):
            peer.read_json(0.1, kind="done")
        took_in = len(handled)
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        print(f"\n[serve] after 2 s: {took_in} of 400 x 1 MiB handled, peak RSS +{grew:.0f} MiB")
        assert took_in < 100, took_in
        assert grew < 100, grew
    finally:
        peer.close()
        node.stop()


def test_a_handler_that_raises_costs_that_message_only(node_factory, pair, caplog):
    node = node_factory(synchronous=False)

    def handler(msg):
        if number_of(msg.data) == 3:
            raise RuntimeError("bad message")
        return msg.data

    with caplog.at_level(logging.ERROR, logger="chirp"):
        _serving(node, handler, workers=4)
        a, _ = pair
        futs = [a.request_async((LOCAL, node.port), numbered(i), timeout=2.0) for i in range(8)]
        for i, f in enumerate(futs):
            if i == 3:
                with pytest.raises(chirp.ChirpTimeoutError):
                    f.result(timeout=10)
            else:
                assert number_of(f.result(timeout=10).data) == i
        node.stop()
    failed = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(failed) == 1 and f"from 127.0.0.1:{a.port}" in failed[0].getMessage()
    assert "RuntimeError: bad message" in caplog.text


def test_stop_and_close_end_serve(node_factory):
    node = node_factory()
    t, box = run_in_thread(node.serve, lambda m: None)
    time.sleep(0.3)
    node.stop()
    t.join(2.0)
    assert not t.is_alive() and "error" not in box, box
    t, box = run_in_thread(node.serve, lambda m: None)
    time.sleep(0.3)
    node.close()
    t.join(5.0)
    assert not t.is_alive() and "error" not in box, box


def test_ctrl_c_stops_serve_after_the_work_in_progress():
    code = textwrap.dedent("""
        import faulthandler, sys, time, threading, chirp
        faulthandler.dump_traceback_later(9, exit=True)  # a hang shows where
        node = chirp.Node(port=0, disable_encryption=True, bind_v6="", synchronous=False)
        peer = chirp.Node(port=0, disable_encryption=True, bind_v6="", synchronous=False)
        def handler(msg):
            print("HANDLING", flush=True)
            time.sleep(1.0)
            print("FINISHED", flush=True)
        peer.send(("127.0.0.1", node.port), b"work")
        print("SERVING", flush=True)
        node.serve(handler, workers=2)
    """)
    child = Child([sys.executable, "-u", "-c", code])
    try:
        assert child.readline(30, "SERVING") == "SERVING"
        assert child.readline(30, "HANDLING") == "HANDLING"
        child.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        assert child.readline(10, "FINISHED") == "FINISHED"  # the work in progress ends
        child.wait(12)
        assert "Timeout" not in child.stderr, child.stderr
        assert time.monotonic() - t0 < 5
        child.close()
        assert "KeyboardInterrupt" in child.stderr
    finally:
        child.close()


def test_aserve_answers_and_survives_a_failing_handler(node_factory, caplog):
    async def handler(msg):
        await asyncio.sleep(0.01)
        if number_of(msg.data) == 5:
            raise ValueError("five")
        return msg.data.upper(), b"h"

    async def main():
        async with chirp.Node(port=0, disable_encryption=True, bind_v6="",
                              synchronous=False) as srv, chirp.Node(
            port=0, disable_encryption=True, bind_v6="", synchronous=False
        ) as cli:  # fmt: skip
            serving = asyncio.ensure_future(srv.aserve(handler, concurrency=4))
            reqs = [cli.arequest((LOCAL, srv.port), numbered(i), timeout=2.0) for i in range(12)]
            results = await asyncio.gather(*reqs, return_exceptions=True)
            srv.stop()
            await asyncio.wait_for(serving, 5)
            return results

    with caplog.at_level(logging.ERROR, logger="chirp"):
        results = asyncio.run(main())
    for i, r in enumerate(results):
        if i == 5:
            assert isinstance(r, chirp.ChirpTimeoutError), r
        else:
            assert r.data == numbered(i).upper() and r.header == b"h", r
    assert "ValueError: five" in caplog.text
