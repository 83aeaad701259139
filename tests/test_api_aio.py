"""The asyncio API against a peer in another process, both modes, on the
default event loop and on uvloop: arecv, arecv_many, async for, asend,
arequest, areply, aclose, async with."""

from __future__ import annotations

import asyncio
import gc
import warnings
import weakref

import pytest
import uvloop
from support.net import LOCAL
from support.payloads import number_of, numbered
from support.peer import Peer

import chirp

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
OPTS = dict(port=0, disable_encryption=True, bind_v6="", timeout=5.0)


@pytest.fixture(params=sorted(LOOPS))
def run(request):
    """run(coroutine) on a new loop of the kind under test; the loop is
    closed after the test."""
    loop = LOOPS[request.param]()
    yield loop.run_until_complete
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


MODES = pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])


@MODES
def test_arecv_and_async_for_from_a_sending_process(run, sync):
    n = 300

    async def main():
        async with chirp.Node(synchronous=sync, **OPTS) as node:
            peer = Peer("send", "--count", n, "--target", f"{LOCAL}:{node.port}",
                        "--concurrent", *([] if sync else ["--async"]))  # fmt: skip
            try:
                first = await node.arecv(timeout=10)
                batch = await node.arecv_many(50, timeout=10)
                rest = []
                async for msg in node:
                    rest.append(msg)
                    if 1 + len(batch) + len(rest) == n:
                        break
                got = [first, *batch, *rest]
                assert sorted(number_of(m.data) for m in got) == list(range(n))
                done = peer.read_json(30, kind="done")
                assert done["nerrors"] == 0, done
            finally:
                peer.close()

    run(main())


@MODES
def test_asend_to_a_sink_process(run, sync):
    n = 500

    async def main():
        peer = Peer("sink", "--count", n + 1)
        try:
            async with chirp.Node(synchronous=sync, **OPTS) as node:
                futs = [node.asend(peer.address, numbered(i)) for i in range(n)]
                assert await asyncio.gather(*futs) == [None] * n
                assert await node.asend(peer.address, numbered(n)) is None
            nums = [r["num"] for r in peer.read_records(n + 1, 30)]
            assert sorted(nums) == list(range(n + 1))
        finally:
            peer.close()

    run(main())


@MODES
def test_arequest_to_an_echo_process(run, sync):
    async def main():
        peer = Peer("echo", *([] if sync else ["--async"]))
        try:
            async with chirp.Node(synchronous=sync, **OPTS) as node:
                for i in range(50):
                    ans = await node.arequest(peer.address, numbered(i), header=b"h")
                    assert (number_of(ans.data), ans.header) == (i, b"h")
                many = await asyncio.gather(
                    *[node.arequest(peer.address, numbered(i)) for i in range(100)]
                )
                assert [number_of(a.data) for a in many] == list(range(100))
        finally:
            peer.close()

    run(main())


@MODES
def test_areply_to_a_requesting_process(run, sync):
    n = 100

    async def main():
        async with chirp.Node(synchronous=sync, **OPTS) as node:
            peer = Peer("request", "--count", n, "--target", f"{LOCAL}:{node.port}",
                        *([] if sync else ["--async"]))  # fmt: skip
            try:
                for _ in range(n):
                    msg = await node.arecv(timeout=10)
                    await node.areply(msg, msg.data, header=b"answer")
                answers = [peer.read_json(30, kind="answer") for _ in range(n)]
                assert [a["num"] for a in answers] == list(range(n))
                assert peer.read_json(30, kind="done")["nerrors"] == 0
            finally:
                peer.close()

    run(main())


def test_aclose_fails_pending_awaits_without_leftover_tasks(run):
    """Coroutines waiting on a node when it closes raise ClosedError;
    nothing hangs, and no task is destroyed pending."""

    async def main():
        node = chirp.Node(**OPTS)
        peer = chirp.Node(synchronous=False, **OPTS)
        try:
            receivers = [asyncio.ensure_future(node.arecv()) for _ in range(3)]
            request = asyncio.ensure_future(node.arequest((LOCAL, peer.port), b"never answered"))
            await asyncio.sleep(0.2)
            assert (await peer.arecv(timeout=5)).data == b"never answered"
            await asyncio.wait_for(node.aclose(linger=0), 10)
            results = await asyncio.wait_for(
                asyncio.gather(*receivers, request, return_exceptions=True), 10
            )
            assert all(isinstance(r, chirp.ClosedError) for r in results), results
            with pytest.raises(chirp.ClosedError):
                await node.arecv()
            async for _ in node:
                raise AssertionError("a closed node yielded a message")
        finally:
            await peer.aclose(linger=0)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(main())
        gc.collect()
    assert not [w for w in caught if "destroyed but it is pending" in str(w.message)]


def test_a_timeout_is_a_timeout_error(run):
    async def main():
        async with chirp.Node(**OPTS) as node:
            with pytest.raises(TimeoutError):
                await node.arecv(timeout=0.2)
            with pytest.raises(chirp.ChirpTimeoutError):
                await node.arecv_many(4, timeout=0.1)

    run(main())


def test_the_event_loop_is_not_blocked(run):
    """While coroutines wait on a node, the loop runs other work."""

    async def main():
        async with chirp.Node(**OPTS) as node:
            waiting = asyncio.ensure_future(node.arecv(timeout=2))
            ticks = 0
            for _ in range(20):
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 20 and not waiting.done()
            with pytest.raises(TimeoutError):
                await waiting

    run(main())


def test_arequest_timeout_bad_input_and_closed_node(run):
    async def main():
        async with chirp.Node(**OPTS) as node, chirp.Node(**OPTS) as mute:
            dest = (LOCAL, mute.port)
            with pytest.raises(chirp.ChirpTimeoutError, match="no reply within 0.2 s"):
                await node.arequest(dest, b"unanswered", timeout=0.2)
            late = await mute.arecv(timeout=5)
            await mute.areply(late, b"too late")
            with pytest.raises(TimeoutError):  # the late reply is dropped
                await node.arecv(timeout=0.3)
            with pytest.raises(TypeError, match="address"):
                await node.arequest("localhost:1", b"x")
            with pytest.raises(TypeError, match="data"):
                await node.arequest(dest, "text")
            with pytest.raises(ValueError, match="timeout"):
                await node.arequest(dest, b"x", timeout=-1)
            assert all(not lk.waits for lk in node._core.links.values())
        with pytest.raises(chirp.ClosedError):
            await node.arequest(dest, b"after close")

    run(main())


def test_a_node_used_from_asyncio_and_dropped_is_collected(run):
    """The loop keeps no reference to an idle node: dropped unclosed after
    arequest and arecv, it is collected (ResourceWarning) and closed."""

    async def main():
        with chirp.Node(**OPTS) as echo:
            node = chirp.Node(**OPTS)
            task = asyncio.ensure_future(echo.arecv(timeout=5))
            ans = asyncio.ensure_future(node.arequest((LOCAL, echo.port), b"ping"))
            msg = await task
            await echo.areply(msg, b"pong")
            assert (await ans).data == b"pong"
            with pytest.raises(TimeoutError):
                await node.arecv(timeout=0.05)
            await asyncio.sleep(0)  # the link's idle check runs
            core, ref = weakref.ref(node._core), weakref.ref(node)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                del node, ans
                gc.collect()
            assert ref() is None, gc.get_referrers(ref())
            assert any(issubclass(w.category, ResourceWarning) for w in caught), caught
            for _ in range(100):  # the core goes once its pump thread ended
                gc.collect()
                if core() is None:
                    break
                await asyncio.sleep(0.05)
            assert core() is None, gc.get_referrers(core())

    run(main())
