"""The batch API: send_many (one crossing, one Future) and recv_many."""

from __future__ import annotations

import pytest
from support.net import free_port

import chirp


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_send_many_delivers_in_order(node_factory, sync: bool) -> None:
    with (
        node_factory(synchronous=sync, bind_v6="") as tx,
        node_factory(synchronous=False, bind_v6="") as rx,
    ):
        items = [b"%05d" % i + bytes(i % 300) for i in range(3000)]
        fut = tx.send_many(("127.0.0.1", rx.port), items, header=b"hdr")
        got = []
        while len(got) < len(items):
            got.extend(rx.recv_many(500, timeout=10))
        assert fut.result(timeout=10) is None
        assert [m.data for m in got] == items
        assert all(m.header == b"hdr" for m in got)
        assert [m.serial for m in got] == sorted(m.serial for m in got)
        assert len({m.identity for m in got}) == len(items)  # fresh identity each


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_send_many_big_messages_arrive_intact(node_factory, sync: bool) -> None:
    """Big messages (on average 4 KiB or more) are written from their own
    buffers instead of a joined copy: content, order and header arrive
    intact, small ones mixed in too, and each batch's Future resolves."""
    with (
        node_factory(synchronous=sync, bind_v6="") as tx,
        node_factory(synchronous=False, bind_v6="") as rx,
    ):
        big = [bytes([i]) * (100_000 + 50_000 * (i % 5)) for i in range(12)]
        mixed = [b"small", bytearray(b"b" * 70_000), b"", b"t" * 9]
        futs = [
            tx.send_many(("127.0.0.1", rx.port), big, header=b"big"),
            tx.send_many(("127.0.0.1", rx.port), mixed, header=b"mixed"),
        ]
        got = []
        while len(got) < len(big) + len(mixed):
            got.extend(rx.recv_many(4, timeout=10))
        assert [f.result(timeout=10) for f in futs] == [None, None]
        assert [m.data for m in got] == big + [bytes(d) for d in mixed]
        assert [m.header for m in got] == [b"big"] * len(big) + [b"mixed"] * len(mixed)


def test_send_many_accepts_any_bytes_like_and_empty(node_factory) -> None:
    with (
        node_factory(synchronous=False, bind_v6="") as tx,
        node_factory(synchronous=False, bind_v6="") as rx,
    ):
        assert tx.send_many(("127.0.0.1", rx.port), []).result(timeout=5) is None
        items = [bytearray(b"a"), memoryview(b"bc"), b""]
        tx.send_many(("127.0.0.1", rx.port), items).result(timeout=5)
        got = [rx.recv(timeout=5).data for _ in range(3)]
        assert got == [b"a", b"bc", b""]
        with pytest.raises(TypeError):
            tx.send_many(("127.0.0.1", rx.port), ["text"])


def test_send_many_failure_counts_every_message(node_factory) -> None:
    with node_factory(synchronous=True, timeout=1.0, bind_v6="") as tx:
        fut = tx.send_many(("127.0.0.1", free_port()), [b"x"] * 10)
        with pytest.raises(chirp.ChirpConnectionError) as info:
            fut.result(timeout=10)
        assert "10 of 10 messages failed" in str(info.value)


def test_send_many_checks_sizes_before_sending(node_factory) -> None:
    with (
        node_factory(max_msg_size=100, bind_v6="") as tx,
        node_factory(synchronous=False, bind_v6="") as rx,
    ):
        with pytest.raises(chirp.MessageSizeError):
            tx.send_many(("127.0.0.1", rx.port), [b"ok", b"x" * 101])
        with pytest.raises(TimeoutError):
            rx.recv(timeout=0.3)  # nothing of the refused batch was sent


def test_send_many_on_closed_node(node_factory) -> None:
    node = node_factory(bind_v6="")
    node.close()
    with pytest.raises(chirp.ClosedError):
        node.send_many(("127.0.0.1", 9), [b"x"])


def test_recv_many_bounds_and_leftovers(node_factory) -> None:
    with (
        node_factory(synchronous=False, bind_v6="") as tx,
        node_factory(synchronous=False, bind_v6="") as rx,
    ):
        tx.send_many(("127.0.0.1", rx.port), [b"%d" % i for i in range(100)]).result(timeout=5)
        got = []
        while len(got) < 100:
            batch = rx.recv_many(7, timeout=5)
            assert 1 <= len(batch) <= 7
            got.extend(batch)
        assert [m.data for m in got] == [b"%d" % i for i in range(100)]
        with pytest.raises(ValueError):
            rx.recv_many(0)


def test_recv_keeps_order_across_small_and_big_messages(node_factory) -> None:
    """Small messages are copied out in batches, big ones (over the copy
    buffer) are taken one by one: the order must not change."""
    sizes = [10, 300_000, 10, 10, 262_100, 262_200, 5, 1_000_000, 0, 7]
    with (
        node_factory(synchronous=False, bind_v6="") as tx,
        node_factory(synchronous=False, bind_v6="") as rx,
    ):
        items = [bytes([i]) * n for i, n in enumerate(sizes)]
        tx.send_many(("127.0.0.1", rx.port), items, header=b"h").result(timeout=10)
        got = []
        while len(got) < len(items):
            got.extend(rx.recv_many(64, timeout=10))
        assert [m.data for m in got] == items
        assert {m.header for m in got} == {b"h"}
        assert all(m.address == "127.0.0.1" and m.port == tx.port for m in got)
        assert all(m.remote_identity == tx.identity for m in got)


@pytest.mark.parametrize("way", ["request", "request_async"])
def test_late_reply_after_timeout_is_not_received(node_factory, way: str) -> None:
    """A reply that comes after its request gave up is dropped, not handed
    to recv(); later traffic is unaffected."""
    with (
        node_factory(synchronous=False, bind_v6="") as asker,
        node_factory(synchronous=False, bind_v6="") as answerer,
    ):
        target = ("127.0.0.1", answerer.port)
        if way == "request":
            with pytest.raises(chirp.ChirpTimeoutError):
                asker.request(target, b"q", timeout=0.3)
        else:
            fut = asker.request_async(target, b"q", timeout=0.3)
            with pytest.raises(chirp.ChirpTimeoutError):
                fut.result(timeout=5)
        question = answerer.recv(timeout=5)
        answerer.reply(question, b"too late")
        with pytest.raises(TimeoutError):
            asker.recv(timeout=0.5)
        answerer.send(("127.0.0.1", asker.port), b"normal")
        assert asker.recv(timeout=5).data == b"normal"
