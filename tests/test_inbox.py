"""The inbox of an auto-release node: small messages that need no ACK are
copied out of their slots as they arrive (bounded), the others wait in
their slots; recv() sees one stream, in order."""

import time

from support.nodes import addr
from support.payloads import number_of, numbered

# Sizes on both sides of the inbox's 4 KiB limit (header and data).
SIZES = (100, 3000, 8192, 40)


def test_copied_and_slot_held_messages_arrive_in_order(node_factory):
    """A receiver that starts late, with two slots: small messages go to
    the inbox, 8 KiB ones wait in slots; every message arrives once, in
    the order sent, with its bytes."""
    rx = node_factory(synchronous=False, max_slots=2)
    tx = node_factory(synchronous=False)
    n = 400
    futs = [tx.send_async(addr(rx), numbered(i, SIZES[i % len(SIZES)])) for i in range(n)]
    time.sleep(0.5)  # the inbox and the slots fill meanwhile
    got = [rx.recv(timeout=10.0) for _ in range(n)]
    assert [number_of(m.data) for m in got] == list(range(n))
    assert all(m.data == numbered(i, SIZES[i % len(SIZES)]) for i, m in enumerate(got))
    for f in futs:
        assert f.result(timeout=10.0) is None


def test_a_receiver_that_does_not_read_holds_the_sender_back(node_factory):
    """The inbox is bounded: a node nobody reads from takes in a few
    hundred kilobytes and TCP's buffers, then the sender waits; once it
    reads, everything arrives in order."""
    rx = node_factory(synchronous=False, timeout=60.0)
    tx = node_factory(synchronous=False, timeout=60.0)
    n, size = 20_000, 4000  # 80 MB: far more than the inbox and TCP hold
    pad = b"x" * (size - 10)
    futs = [tx.send_async(addr(rx), b"%010d" % i + pad) for i in range(n)]
    time.sleep(2.0)
    done = sum(f.done() for f in futs)
    assert done < n // 2, f"{done} of {n} sends went out to a node that does not read"
    got = 0
    while got < n:
        msgs = rx.recv_many(256, timeout=30.0)
        for m in msgs:
            assert number_of(m.data) == got
            got += 1
    assert all(f.exception(timeout=30.0) is None for f in futs)


def test_synchronous_messages_are_not_copied_before_the_application_takes_them(node_factory):
    """A synchronous sender's message is acknowledged only once the
    application took it: with one slot and nobody reading, the second
    send waits (the inbox does not take REQ_ACK messages)."""
    rx = node_factory(synchronous=False, max_slots=1)
    tx = node_factory(synchronous=True, timeout=10.0)
    first = tx.send_async(addr(rx), b"one")
    second = tx.send_async(addr(rx), b"two")
    time.sleep(0.5)
    assert not first.done() and not second.done()
    assert rx.recv(timeout=5.0).data == b"one"
    assert first.result(timeout=5.0) is None
    assert rx.recv(timeout=5.0).data == b"two"
    assert second.result(timeout=5.0) is None


def test_without_an_inbox_the_slots_hold_the_sender_back_sooner(node_factory):
    """inbox_size=0: a node that does not read holds one slot and TCP's
    buffers; with a 16 MiB inbox it takes about 4,000 more 4 KB messages
    before the sender waits.  Both deliver everything, in order, once read."""
    done = {}
    big = 16 * 1024 * 1024
    for size in (0, big):
        rx = node_factory(synchronous=False, timeout=60.0, max_slots=1, inbox_size=size)
        tx = node_factory(synchronous=False, timeout=60.0)
        assert rx.config.inbox_size == size
        n = 8000
        pad = b"y" * 3990
        futs = [tx.send_async(addr(rx), b"%010d" % i + pad) for i in range(n)]
        time.sleep(1.5)
        done[size] = sum(f.done() for f in futs)
        got = []
        while len(got) < n:
            got += [number_of(m.data) for m in rx.recv_many(256, timeout=30.0)]
        assert got == list(range(n))
        assert all(f.exception(timeout=30.0) is None for f in futs)
    assert done[0] + 2000 < done[big], done
