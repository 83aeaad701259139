"""The Futures of send_async/request_async/send_many are real
concurrent.futures.Future objects: waited on from other threads, with
callbacks, wait(), as_completed() and asyncio.  They are made lazily (no
Condition until somebody waits) and finished in runs (one event for many
consecutive successes), so these tests cover both the fast and the
waited path."""

import asyncio
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, as_completed, wait

import pytest
from support.net import free_port
from support.nodes import addr, recv_n

import chirp


def test_is_a_future_and_cannot_be_cancelled(pair):
    a, b = pair
    fut = a.send_async(addr(b), b"x")
    assert isinstance(fut, Future)
    assert fut.cancel() is False
    assert fut.result(timeout=10) is None
    assert fut.done() and not fut.cancelled() and fut.exception() is None
    assert not fut.running() or fut.done()
    recv_n(b, 1)


def test_many_futures_finish_in_order_and_once(pair):
    """A stream's completions arrive merged; every Future still finishes,
    none twice, each with None."""
    a, b = pair
    futs = [a.send_async(addr(b), b"%d" % i) for i in range(5000)]
    msgs = recv_n(b, 5000)
    assert [m.data for m in msgs] == [b"%d" % i for i in range(5000)]
    for fut in futs:
        assert fut.result(timeout=10) is None


def test_requests_inside_a_stream_get_their_replies(pair):
    """A request's token sits between send tokens: a merged run of send
    successes must not finish the request with None."""
    a, b = pair
    futs = []
    for i in range(300):
        if i % 50 == 25:
            futs.append(("req", a.request_async(addr(b), b"q%d" % i, timeout=10)))
        else:
            futs.append(("send", a.send_async(addr(b), b"s%d" % i)))
    seen = 0
    while seen < 300:
        for m in b.recv_many(64, timeout=10):
            seen += 1
            if m.data.startswith(b"q"):
                b.reply(m, b"r" + m.data[1:])
    for i, (kind, fut) in enumerate(futs):
        if kind == "req":
            assert fut.result(timeout=10).data == b"r%d" % i
        else:
            assert fut.result(timeout=10) is None


def test_waiting_threads_are_woken(node_factory):
    """Threads block in result() before the send can complete (the
    synchronous receiver has not released it yet) and are all woken."""
    a = node_factory(synchronous=True)
    b = node_factory(synchronous=False, auto_release=False)
    fut = a.send_async(addr(b), b"held")
    msg = b.recv(timeout=10)
    results = []

    def waiter():
        results.append(fut.result(timeout=20))

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    assert not fut.done() and results == []
    msg.release()  # the ACK completes the synchronous send
    for t in threads:
        t.join(20)
    assert results == [None] * 4


def test_callbacks_run_once_before_and_after_completion(node_factory):
    a = node_factory(synchronous=True)
    b = node_factory(synchronous=False, auto_release=False)
    calls = []
    fut = a.send_async(addr(b), b"cb")
    fut.add_done_callback(lambda f: calls.append(("early", f.exception())))
    msg = b.recv(timeout=10)
    assert calls == []
    msg.release()
    fut.result(timeout=10)
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    fut.add_done_callback(lambda f: calls.append(("late", f.exception())))
    assert calls == [("early", None), ("late", None)]


def test_failures_reach_the_future_waited_or_not(node_factory):
    port = free_port()  # nothing listens there
    with node_factory(synchronous=False, timeout=1.0) as a:
        unwaited = a.send_async(("127.0.0.1", port), b"x")
        waited = a.send_async(("127.0.0.1", port), b"y")
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("e", waited.exception(timeout=20)))
        t.start()
        t.join(20)
        assert isinstance(box["e"], chirp.ChirpConnectionError)
        deadline = time.monotonic() + 20
        while not unwaited.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(unwaited.exception(timeout=0), chirp.ChirpConnectionError)
        with pytest.raises(chirp.ChirpConnectionError):
            unwaited.result()


def test_wait_and_as_completed(pair):
    a, b = pair
    futs = [a.send_async(addr(b), b"w%d" % i) for i in range(200)]
    done, not_done = wait(futs, timeout=20, return_when=FIRST_EXCEPTION)
    assert len(done) == 200 and not not_done
    more = [a.send_async(addr(b), b"c%d" % i) for i in range(200)]
    assert sum(1 for f in as_completed(more, timeout=20) if f.exception() is None) == 200
    recv_n(b, 400)


def test_asyncio_can_await_them(pair):
    a, b = pair

    async def main():
        futs = [asyncio.wrap_future(a.send_async(addr(b), b"aio%d" % i)) for i in range(100)]
        return await asyncio.wait_for(asyncio.gather(*futs), 20)

    assert asyncio.run(main()) == [None] * 100
    recv_n(b, 100)


def test_result_timeout_on_a_pending_future(node_factory):
    a = node_factory(synchronous=True)
    b = node_factory(synchronous=False, auto_release=False)
    fut = a.send_async(addr(b), b"pending")
    msg = b.recv(timeout=10)
    with pytest.raises(TimeoutError):
        fut.result(timeout=0.05)
    msg.release()
    assert fut.result(timeout=10) is None


def test_racing_waiters_and_completions(pair):
    """Threads wait on Futures as their completions arrive: none hangs,
    every result is None."""
    a, b = pair
    futs = [a.send_async(addr(b), b"r%d" % i) for i in range(3000)]
    errors = []

    def check(part):
        for f in part:
            if f.result(timeout=20) is not None:
                errors.append(f)

    threads = [threading.Thread(target=check, args=(futs[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    recv_n(b, 3000)
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_big_messages_sent_without_a_copy_stay_intact(pair):
    """send_async hands data of 64 KiB and more to the core uncopied; the
    bytes stay alive until written even when the caller drops them."""
    import gc
    import hashlib
    import os

    a, b = pair
    digests = []
    futs = []
    for i in range(12):
        data = os.urandom(64 * 1024 + i * 40_000)
        digests.append(hashlib.sha256(data).digest())
        futs.append(a.send_async(addr(b), data))
        del data
        gc.collect()
        junk = [os.urandom(64 * 1024) for _ in range(4)]  # reuse freed memory
        del junk
    got = [hashlib.sha256(m.data).digest() for m in recv_n(b, 12)]
    assert got == digests
    for fut in futs:
        assert fut.result(timeout=10) is None
    assert a._core.keep == {}  # every reference let go once written


def test_plain_future_fallback_works(pair, monkeypatch):
    """On a Python whose Future has other fields, chirp falls back to the
    plain Future (Condition made at once): everything still works."""
    import chirp._futures

    monkeypatch.setattr(chirp._futures, "new_future", chirp._futures.PlainChirpFuture)
    a, b = pair
    futs = [a.send_async(addr(b), b"f%d" % i) for i in range(500)]
    assert all("_condition" in vars(f) for f in futs)
    calls = []
    futs[-1].add_done_callback(calls.append)
    done, not_done = wait(futs, timeout=20)
    assert len(done) == 500 and not not_done
    assert all(f.result() is None for f in futs)
    recv_n(b, 500)
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [futs[-1]]


def test_send_async_takes_its_documented_keywords(pair):
    """The fast path bound to the node keeps Node.send_async's signature."""
    a, b = pair
    fut = a.send_async(address=addr(b), data=b"kw", header=b"h")
    assert fut.result(timeout=10) is None
    (msg,) = recv_n(b, 1)
    assert (msg.data, msg.header) == (b"kw", b"h")


def test_subclass_override_of_send_async_is_used(pair):
    """A subclass's send_async is not bypassed by the fast path."""
    _, b = pair
    calls = []

    class Counting(chirp.Node):
        def send_async(self, address, data, header=b""):
            calls.append(data)
            return super().send_async(address, data, header)

    with Counting(port=0, bind_v6="", synchronous=False, disable_encryption=True) as c:
        c.send_async(addr(b), b"sub").result(timeout=10)
    assert calls == [b"sub"]
    assert recv_n(b, 1)[0].data == b"sub"


def test_futures_do_not_keep_a_closed_node_alive(node_factory, pair):
    """Futures kept after the node is gone do not hold its core (and so
    its native memory)."""
    import gc
    import weakref

    _, b = pair
    node = node_factory.collectable(synchronous=False)
    futs = [node.send_async(addr(b), b"%d" % i) for i in range(100)]
    wait(futs, timeout=10)
    core = weakref.ref(node._core)
    node.close()
    del node
    gc.collect()
    assert core() is None
    assert all(f.done() and f.exception() is None for f in futs)
    recv_n(b, 100)
