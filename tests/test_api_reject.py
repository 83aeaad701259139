"""Rejecting a message: the synchronous sender's send fails with
RejectedError carrying the reason and the receiver's address; a handler of
serve()/aserve() that raises rejects its message.  (libchirp senders:
tests/interop/test_interop.py.)"""

from __future__ import annotations

import asyncio
import threading

import pytest
from support.net import LOCAL
from support.nodes import addr
from support.payloads import number_of, numbered
from support.waits import run_in_thread

import chirp


def consume(rx, n, verdict):
    """Receive n messages on a thread; verdict(msg) -> a reason to reject
    with, or None to release."""

    def go():
        for _ in range(n):
            msg = rx.recv(timeout=10)
            reason = verdict(msg)
            if reason is None:
                msg.release()
            else:
                msg.reject(reason)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_a_rejected_send_fails_with_the_reason_and_the_rest_go_on(node_factory):
    rx = node_factory(synchronous=False, auto_release=False)
    tx = node_factory(synchronous=True)
    t = consume(rx, 5, lambda m: "odd: %d" % number_of(m.data) if number_of(m.data) % 2 else None)
    results = []
    for i in range(5):
        try:
            tx.send(addr(rx), numbered(i))
            results.append(None)
        except chirp.RejectedError as e:
            results.append(e)
    t.join(10)
    assert [r is None for r in results] == [True, False, True, False, True]
    e = results[1]
    assert e.reason == "odd: 1" and e.address == f"{LOCAL}:{rx.port}"
    assert str(e) == f"{LOCAL}:{rx.port} rejected the message: odd: 1"
    assert e.code == "CH_EREJECTED" and isinstance(e, chirp.ChirpError)
    assert tx.stats()["sends_failed_rejected"] == 2 and rx.stats()["messages_rejected"] == 2


def test_pipelined_sends_each_get_their_own_verdict(node_factory):
    rx = node_factory(synchronous=False, auto_release=False, max_slots=4)
    tx = node_factory(synchronous=True, max_inflight=16)
    n = 200
    t = consume(rx, n, lambda m: None if number_of(m.data) % 3 else "no %d" % number_of(m.data))
    futs = [tx.send_async(addr(rx), numbered(i)) for i in range(n)]
    for i, f in enumerate(futs):
        if i % 3:
            assert f.result(timeout=20) is None
        else:
            with pytest.raises(chirp.RejectedError, match=f"rejected the message: no {i}$"):
                f.result(timeout=20)
    t.join(10)


def test_a_rejected_request_fails(node_factory):
    rx = node_factory(synchronous=False, auto_release=False)
    tx = node_factory(synchronous=True)
    t = consume(rx, 1, lambda m: "cannot answer that")
    with pytest.raises(chirp.RejectedError, match="cannot answer that"):
        tx.request(addr(rx), b"question?", timeout=10)
    t.join(10)


def test_an_asynchronous_sender_asked_for_nothing(node_factory):
    rx = node_factory(synchronous=False, auto_release=False)
    tx = node_factory(synchronous=False)
    t = consume(rx, 2, lambda m: "rejected" if m.data == b"a" else None)
    tx.send(addr(rx), b"a")  # written: success, whatever the receiver does
    tx.send(addr(rx), b"b")
    t.join(10)
    assert not t.is_alive() and rx.stats()["messages_rejected"] == 1


def test_long_odd_reasons_are_cut_and_cleaned(node_factory):
    rx = node_factory(synchronous=False, auto_release=False)
    tx = node_factory(synchronous=True)
    reason = "é" * 80 + "\x00\nend"  # 160 bytes of UTF-8, a NUL, a newline, then more
    t = consume(rx, 2, lambda m: reason if m.data == b"1" else "é" * 2500)
    with pytest.raises(chirp.RejectedError) as ei:
        tx.send(addr(rx), b"1")
    assert ei.value.reason == "é" * 80 + "??end"  # control characters shown as ?
    with pytest.raises(chirp.RejectedError) as ei:
        tx.send(addr(rx), b"2")
    assert ei.value.reason == "é" * 90  # 5000 bytes: cut to 180, not in a character
    t.join(10)


def test_what_cannot_be_rejected_says_why(node_factory):
    rx = node_factory(synchronous=False)  # auto_release
    tx = node_factory(synchronous=False, auto_release=False)
    tx.send(addr(rx), b"x")
    msg = rx.recv(timeout=10)
    with pytest.raises(ValueError, match="already released .*auto_release=False"):
        msg.reject("late")
    rx.send(addr(tx), b"y")
    held = tx.recv(timeout=10)
    with pytest.raises(TypeError, match="reason must be a str, got bytes"):
        held.reject(b"bytes")  # type: ignore[arg-type]
    held.release()
    with pytest.raises(ValueError, match="already released"):
        held.reject("twice")


def test_a_failing_handler_of_serve_rejects_its_message(node_factory):
    node = node_factory(synchronous=False)

    def handler(msg):
        if number_of(msg.data) == 3:
            raise RuntimeError("bad message")
        return msg.data

    t, _ = run_in_thread(node.serve, handler, 2)
    tx = node_factory(synchronous=True)
    try:
        for i in range(6):
            if i == 3:
                with pytest.raises(chirp.RejectedError) as ei:
                    tx.request(addr(node), numbered(i), timeout=10)
                assert ei.value.reason == "RuntimeError: bad message"
            else:
                assert number_of(tx.request(addr(node), numbered(i), timeout=10).data) == i
    finally:
        node.stop()
        t.join(10)


def test_a_failing_handler_of_aserve_rejects_its_message(node_factory):
    node = node_factory(synchronous=False)
    tx = node_factory(synchronous=True)

    async def handler(msg):
        if msg.data == b"boom":
            raise KeyError("no such thing")
        return b"ok"

    async def main():
        serving = asyncio.ensure_future(node.aserve(handler, 2))
        try:
            assert (await tx.arequest(addr(node), b"fine", timeout=10)).data == b"ok"
            with pytest.raises(chirp.RejectedError, match="KeyError: 'no such thing'"):
                await tx.arequest(addr(node), b"boom", timeout=10)
        finally:
            node.stop()
            await asyncio.wait_for(serving, 10)

    asyncio.run(main())
