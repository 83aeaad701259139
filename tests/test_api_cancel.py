"""Cancelling: a pending request withdraws (its late reply is dropped,
never received), from concurrent.futures and from asyncio; a send
already handed to the core cannot be cancelled."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf

import pytest
from support.nodes import addr, assert_no_message

import chirp


def test_a_cancelled_request_drops_its_late_reply(pair):
    a, b = pair
    fut = a.request_async(addr(b), b"question")
    req = b.recv(timeout=5.0)
    assert fut.cancel() is True
    assert fut.cancelled() and fut.done()
    with pytest.raises(cf.CancelledError):
        fut.result(timeout=0)
    b.reply(req, b"too late")
    assert_no_message(a, 1.0)  # the reply is not received as a message
    # the node keeps working: the next request gets its answer
    nxt = a.request_async(addr(b), b"again")
    b.reply(b.recv(timeout=5.0), b"answer")
    assert nxt.result(timeout=5.0).data == b"answer"


def test_cancel_after_the_reply_came_does_nothing(pair):
    a, b = pair
    fut = a.request_async(addr(b), b"q")
    b.reply(b.recv(timeout=5.0), b"a")
    assert fut.result(timeout=5.0).data == b"a"
    assert fut.cancel() is False and not fut.cancelled()


def test_a_send_cannot_be_cancelled(pair):
    a, b = pair
    fut = a.send_async(addr(b), b"on its way")
    assert fut.cancel() is False
    assert fut.result(timeout=5.0) is None and not fut.cancelled()
    assert b.recv(timeout=5.0).data == b"on its way"


def test_cancel_wakes_a_waiting_thread_and_callbacks(pair):
    a, b = pair
    fut = a.request_async(addr(b), b"q")
    calls = []
    fut.add_done_callback(calls.append)
    b.recv(timeout=5.0)
    with cf.ThreadPoolExecutor(1) as ex:
        waiter = ex.submit(lambda: cf.wait([fut], timeout=10))
        assert fut.cancel()
        done, not_done = waiter.result(timeout=10)
    assert fut in done and not not_done
    assert calls == [fut]


def test_asyncio_cancel_withdraws_the_request(pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(asyncio.wrap_future(a.request_async(addr(b), b"q")))
        await asyncio.sleep(0.1)
        req = b.recv(timeout=5.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return req

    req = asyncio.run(main())
    b.reply(req, b"late")
    assert_no_message(a, 1.0)


def test_many_cancelled_requests_leave_nothing_behind(pair):
    """Replies to 200 cancelled requests all come later: none is received,
    none is left pending, and requests still work."""
    a, b = pair
    futs = [a.request_async(addr(b), b"%d" % i) for i in range(200)]
    reqs = [b.recv(timeout=5.0) for _ in range(200)]
    assert all(f.cancel() for f in futs)
    for r in reqs:
        b.reply(r, b"late")
    assert_no_message(a, 1.0)
    assert a._core.pending == {}
    fut = a.request_async(addr(b), b"last")
    b.reply(b.recv(timeout=5.0), b"ok")
    assert fut.result(timeout=5.0).data == b"ok"


def test_a_closed_node_cancel_is_refused_or_closed(node_factory):
    a = node_factory(synchronous=False)
    b = node_factory(synchronous=False)
    fut = a.request_async(addr(b), b"q")
    b.recv(timeout=5.0)
    a.close(linger=0)
    assert isinstance(fut.exception(timeout=5.0), chirp.ClosedError)
    assert fut.cancel() is False
