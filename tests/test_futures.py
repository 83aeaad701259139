"""chirp's Futures on their own (src/chirp/_futures.py), without a node:
both the lazy one and the plain fallback keep concurrent.futures.Future's
contract on the running Python, and the lazy one is used exactly when
this Python's Future has the fields it relies on."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time

import pytest

from chirp import _futures

KINDS = [_futures.ChirpFuture, _futures.PlainChirpFuture]


def test_lazy_futures_are_used_exactly_when_the_fields_match():
    fields = set(vars(cf.Future()))
    assert _futures.LAZY_FUTURES == (fields == _futures.FUTURE_FIELDS)
    expected = _futures.ChirpFuture if _futures.LAZY_FUTURES else _futures.PlainChirpFuture
    assert _futures.new_future is expected


def test_a_lazy_future_makes_its_condition_only_when_watched():
    fut = _futures.ChirpFuture()
    assert "_cond" not in vars(fut)
    fut._finish(7, None)  # by assignment: nobody watches
    assert "_cond" not in vars(fut) and fut.result() == 7
    other = _futures.ChirpFuture()
    other.add_done_callback(lambda f: None)
    assert "_cond" in vars(other) and other._watched


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_result_and_exception(kind):
    ok, bad = kind(), kind()
    err = ValueError("boom")
    ok._finish("fine", None)
    bad._finish(None, err)
    assert ok.done() and ok.result() == "fine" and ok.exception() is None
    assert bad.done() and bad.exception() is err
    with pytest.raises(ValueError, match="boom"):
        bad.result()
    ok._finish("again", None)  # a second finish is ignored, never raises
    assert ok.result() == "fine"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_cannot_be_cancelled(kind):
    fut = kind()
    assert fut.cancel() is False and not fut.cancelled()
    fut._finish(None, None)
    assert not fut.cancelled()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_a_waiting_thread_is_woken(kind):
    fut = kind()
    got = []
    waiter = threading.Thread(target=lambda: got.append(fut.result(timeout=10)))
    waiter.start()
    time.sleep(0.05)  # the waiter is (most likely) inside result() now
    fut._finish(42, None)
    waiter.join(timeout=10)
    assert got == [42]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_result_times_out(kind):
    fut = kind()
    t0 = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        fut.result(timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    assert not fut.done()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_callbacks_run_once_before_and_after(kind):
    fut = kind()
    calls = []
    fut.add_done_callback(calls.append)
    fut._finish(1, None)
    fut.add_done_callback(calls.append)  # already done: called at once
    assert calls == [fut, fut]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_wait_and_as_completed(kind):
    futs = [kind() for _ in range(20)]
    for f in futs[:10]:
        f._finish(None, None)  # finished before anybody waits
    threading.Timer(0.05, lambda: [f._finish(None, None) for f in futs[10:]]).start()
    done, not_done = cf.wait(futs, timeout=10)
    assert len(done) == 20 and not not_done
    assert len(list(cf.as_completed(futs, timeout=10))) == 20


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_asyncio_wrap_future(kind):
    fut = kind()

    async def main():
        wrapped = asyncio.wrap_future(fut)
        asyncio.get_running_loop().call_later(0.02, fut._finish, "from the pump", None)
        return await asyncio.wait_for(wrapped, 10)

    assert asyncio.run(main()) == "from the pump"
