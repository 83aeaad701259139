"""recv(copy=False): a big message's data is handed over in the buffer it
arrived in, owned by the application until its last view is gone."""

import asyncio
import gc
import weakref

import pytest
from support.nodes import addr

import chirp
from chirp._chirp import lib

MiB = 1024 * 1024


def _payload(size: int, seed: int = 0) -> bytes:
    """size bytes that differ at every position (a misplaced view shows)."""
    return bytes((seed + i * 7) & 0xFF for i in range(256)) * (size // 256) + b"\x5a" * (size % 256)


@pytest.mark.parametrize(
    "header, size",
    [
        (b"", 0),
        (b"h", lib.CH_INLINE_SIZE - 1),  # header and data fill the slot's own
        (b"", lib.CH_INLINE_SIZE),
        (b"", lib.CH_INLINE_SIZE + 1),  # the first with a buffer of its own
        (b"head" * 10, lib.CH_INLINE_SIZE),
        (b"head" * 10, 3 * MiB + 5),
    ],
)
def test_view_is_the_data_at_every_size(pair, header, size):
    """Small messages (copied from their slot) and big ones (taken over)
    read the same through view, data and header."""
    a, b = pair
    data = _payload(size, seed=size)
    a.send_async(addr(b), data, header=header).result(timeout=10)
    m = b.recv(timeout=10, copy=False)
    assert m.view == data
    assert m.view.readonly
    assert m.header == header
    assert m.data == data
    assert m.data is m.data  # copied once, then kept
    assert isinstance(m, chirp.Message)


def test_view_outlives_release_close_and_the_node(node_factory):
    """A view (and a slice of it) taken with copy=False stays readable after
    the message was released, the node closed and the node collected: the
    buffer is the application's (under the sanitizers a read of freed
    memory fails here)."""
    rx = node_factory.collectable(synchronous=False, auto_release=False)
    gone = weakref.ref(rx)
    tx = node_factory(synchronous=False)
    data = _payload(2 * MiB + 3)
    tx.send_async(addr(rx), data).result(timeout=10)
    m = rx.recv(timeout=10, copy=False)
    part = m.view[MiB:]
    m.release()
    assert m.released
    rx.close()
    del rx
    gc.collect()
    assert gone() is None  # the node and its core are freed
    assert m.view == data
    assert part == data[MiB:]
    del m
    gc.collect()
    assert part == data[MiB:]  # the slice alone keeps the buffer


def test_held_message_acknowledged_on_release_not_on_take(node_factory):
    """auto_release=False with copy=False: taking the buffer is not the
    release; a synchronous sender's send completes only at release(), and
    the view stays valid after it."""
    rx = node_factory(synchronous=False, auto_release=False)
    tx = node_factory(synchronous=True, timeout=10.0)
    data = _payload(MiB)
    fut = tx.send_async(addr(rx), data)
    m = rx.recv(timeout=10, copy=False)
    with pytest.raises(TimeoutError):
        fut.result(timeout=0.5)  # no ACK while the slot is held
    m.release()
    assert fut.result(timeout=10) is None
    assert m.view == data


def test_taken_buffers_leave_the_memory_budget_at_release(node_factory):
    """The budget (max_memory) counts a big message's buffer until it is
    released, not while the application keeps its view: 12 views of 1 MiB
    kept by an application whose node may hold 4 MiB."""
    rx = node_factory(synchronous=False, max_memory=4 * MiB, max_msg_size=2 * MiB)
    tx = node_factory(synchronous=False)
    sends = [tx.send_async(addr(rx), _payload(MiB, seed=i)) for i in range(12)]
    views = [rx.recv(timeout=10, copy=False).view for _ in range(12)]
    for f in sends:
        assert f.result(timeout=10) is None
    assert [v == _payload(MiB, seed=i) for i, v in enumerate(views)] == [True] * 12
    assert rx.stats()["message_memory"] == 0


def test_buffers_are_freed_with_their_last_view(pair):
    """Each taken buffer is freed when the last view of it goes, and not
    before: a leak would leave the count up, a free too soon would show
    under the sanitizers as a read of freed memory."""
    a, b = pair
    data = _payload(MiB)
    base = lib.ch_testing_taken_buffers()
    futs = [a.send_async(addr(b), data) for _ in range(30)]
    kept = []
    for i in range(30):
        m = b.recv(timeout=10, copy=False)
        if i % 3 == 0:
            kept.append(m.view[-10:])  # a slice keeps the whole buffer
        del m
    for f in futs:
        f.result(timeout=10)
    gc.collect()
    assert lib.ch_testing_taken_buffers() - base == 10
    assert all(k == data[-10:] for k in kept)
    kept.clear()
    assert lib.ch_testing_taken_buffers() == base


def test_recv_many_and_arecv_without_copies(pair):
    a, b = pair
    sent = [_payload(64 * 1024 + i, seed=i) for i in range(5)]
    for d in sent:
        a.send_async(addr(b), d).result(timeout=10)
    got = []
    while len(got) < 3:
        got += b.recv_many(3 - len(got), timeout=10, copy=False)
    assert [m.view for m in got] == sent[:3]

    async def take_rest():
        first = await b.arecv(timeout=10, copy=False)
        rest = await b.arecv_many(8, timeout=10, copy=False)
        return [first, *rest]

    rest = asyncio.run(take_rest())
    while len(rest) < 2:
        rest.append(b.recv(timeout=10, copy=False))
    assert [m.view for m in rest] == sent[3:]


@pytest.mark.parametrize("bad", ["no", None, 0, 1.0])
def test_copy_must_be_a_bool(pair, bad):
    """A wrong type is named, and nothing is taken: the message is still
    there for the next recv."""
    a, b = pair
    a.send_async(addr(b), b"kept").result(timeout=10)
    for call in (
        lambda: b.recv(timeout=5, copy=bad),
        lambda: b.recv_many(4, timeout=5, copy=bad),
        lambda: asyncio.run(b.arecv(timeout=5, copy=bad)),
        lambda: asyncio.run(b.arecv_many(4, timeout=5, copy=bad)),
    ):
        with pytest.raises(TypeError, match="copy must be True or False"):
            call()
    assert b.recv(timeout=5).data == b"kept"
