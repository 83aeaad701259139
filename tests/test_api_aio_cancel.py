"""Cancelling on asyncio never loses a message (property tests).

Receivers: K numbered messages arrive while receiving coroutines are timed
out (wait_for) and cancelled at random moments: in the end each message was
received exactly once.  Requests: some are cancelled at random moments
while their replies come back: every reply is either returned to the
coroutine that awaits it or dropped, never received as a message."""

from __future__ import annotations

import asyncio
import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.net import LOCAL
from support.payloads import number_of, numbered

import chirp

OPTS = dict(port=0, disable_encryption=True, bind_v6="", timeout=5.0)

ACTIONS = st.one_of(
    st.tuples(st.just("plain"), st.just(0.0)),
    st.tuples(st.just("wait_for"), st.floats(0.0, 0.01)),
    st.tuples(st.just("cancel"), st.floats(0.0, 0.01)),
)


def _send_in_thread(tx, address, k, pace):
    def go():
        for i in range(k):
            tx.send_async(address, numbered(i))
            if pace and i % 7 == 0:
                time.sleep(pace)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(1, 150),
    actions=st.lists(ACTIONS, min_size=1, max_size=12),
    receivers=st.integers(1, 3),
    pace=st.sampled_from([0.0, 0.001]),
    many=st.booleans(),
)
def test_cancelled_receives_lose_nothing(k, actions, receivers, pace, many):
    got: list[int] = []

    # A plain receive in every cycle: wait_for(call, 0) never even starts
    # its coroutine, so a cycle of only those would never receive.
    cycle = [*actions, ("plain", 0.0)]

    async def receiver(rx, me):
        step = me
        while len(got) < k:
            kind, value = cycle[step % len(cycle)]
            step += 1
            call = rx.arecv_many(5, timeout=2) if many else rx.arecv(timeout=2)
            try:
                if kind == "wait_for":
                    res = await asyncio.wait_for(call, value)
                elif kind == "cancel":
                    task = asyncio.ensure_future(call)
                    await asyncio.sleep(value)
                    task.cancel()
                    await asyncio.wait([task])  # a cancel of ours stays ours
                    if task.cancelled():
                        continue
                    res = task.result()
                else:
                    res = await call
            except (asyncio.TimeoutError, TimeoutError):  # not CancelledError:
                continue  # the test's own deadline must end the receivers
            got.extend(number_of(m.data) for m in (res if many else [res]))

    async def main():
        with (
            chirp.Node(synchronous=False, **OPTS) as rx,
            chirp.Node(synchronous=False, **OPTS) as tx,
        ):
            sender = _send_in_thread(tx, (LOCAL, rx.port), k, pace)
            await asyncio.wait_for(asyncio.gather(*[receiver(rx, i) for i in range(receivers)]), 20)
            sender.join(10)
            try:  # nothing more than the k
                extra = await rx.arecv(timeout=0.1)
                raise AssertionError(f"an extra message: {extra!r}")
            except chirp.ChirpTimeoutError:
                pass

    asyncio.run(main())
    assert sorted(got) == list(range(k)), f"lost or doubled: {sorted(got)[:20]}..."


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 40),
    cancel=st.lists(st.booleans(), min_size=1, max_size=40),
    delays=st.lists(st.floats(0.0, 0.005), min_size=1, max_size=10),
)
def test_cancelled_requests_never_deliver_their_reply_to_recv(n, cancel, delays):
    stats = {"answered": 0, "cancelled": 0}

    def responder(rx, stop):
        i = 0
        while not stop.is_set():
            try:
                msg = rx.recv(timeout=0.05)
            except chirp.ChirpTimeoutError:
                continue
            except chirp.ClosedError:
                return
            time.sleep(delays[i % len(delays)])
            i += 1
            rx.reply(msg, msg.data)

    async def main():
        with (
            chirp.Node(synchronous=False, **OPTS) as rx,
            chirp.Node(synchronous=False, **OPTS) as tx,
        ):
            stop = threading.Event()
            t = threading.Thread(target=responder, args=(rx, stop), daemon=True)
            t.start()
            tasks = [
                asyncio.ensure_future(tx.arequest((LOCAL, rx.port), numbered(i))) for i in range(n)
            ]
            for i, task in enumerate(tasks):
                if cancel[i % len(cancel)]:
                    await asyncio.sleep(delays[i % len(delays)])
                    task.cancel()
            for i, task in enumerate(tasks):
                try:
                    ans = await asyncio.wait_for(task, 20)
                    assert number_of(ans.data) == i
                    stats["answered"] += 1
                except asyncio.CancelledError:
                    stats["cancelled"] += 1
            await asyncio.sleep(0.1)  # late replies arrive meanwhile
            stop.set()
            t.join(10)
            try:
                stray = await tx.arecv(timeout=0.3)
                raise AssertionError(f"a reply was received as a message: {stray!r}")
            except chirp.ChirpTimeoutError:
                pass
            assert all(not lk.waits for lk in tx._core.links.values())

    asyncio.run(main())
    assert stats["answered"] + stats["cancelled"] == n
    COUNTS["requests"] += n
    COUNTS["cancelled"] += stats["cancelled"]


COUNTS = {"requests": 0, "cancelled": 0}


def test_zz_report_the_request_counts():
    """Prints what the property test above exercised (run with -s)."""
    print(f"\n[aio] requests {COUNTS['requests']}, cancelled {COUNTS['cancelled']}")


def test_a_message_handed_over_then_cancelled_goes_back_first(monkeypatch):
    """White box, the narrow window made certain: the link hands a message
    to a waiting receiver and the receiver is cancelled before it runs
    again.  The message goes back, first in line, and the next receiver
    gets it, before the messages behind it."""
    from chirp import _aio

    victims: list[asyncio.Task] = []
    deliver = _aio.Link.deliver

    def deliver_then_cancel(self):
        deliver(self)
        while victims:
            victims.pop().cancel()  # after the hand-over, before it resumes

    monkeypatch.setattr(_aio.Link, "deliver", deliver_then_cancel)

    async def main():
        with (
            chirp.Node(synchronous=False, **OPTS) as rx,
            chirp.Node(synchronous=False, **OPTS) as tx,
        ):
            task = asyncio.ensure_future(rx.arecv(timeout=5))
            await asyncio.sleep(0.05)  # it waits on the link now
            victims.append(task)
            for i in range(3):
                tx.send((LOCAL, rx.port), numbered(i))
            try:
                await task
                raise AssertionError("the receive was not cancelled")
            except asyncio.CancelledError:
                pass
            monkeypatch.setattr(_aio.Link, "deliver", deliver)
            got = [number_of((await rx.arecv(timeout=5)).data) for _ in range(3)]
            assert got == [0, 1, 2], got

    asyncio.run(main())
