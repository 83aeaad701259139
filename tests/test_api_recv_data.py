"""recv_many_data(): the data of many messages as bytes, no Message objects."""

import pytest
from support.nodes import addr

import chirp


def test_the_data_in_order_at_every_size(pair):
    """Small ones back to back, an empty one, one too big for the copy
    buffer (taken as a Message inside), headers dropped, order kept."""
    a, b = pair
    sent = [b"m%d" % i for i in range(500)] + [b"", b"B" * 300_000, b"last"]
    futs = [a.send_async(addr(b), d, header=b"h" if i % 2 else b"") for i, d in enumerate(sent)]
    for f in futs:
        assert f.result(timeout=10) is None
    got: list[bytes] = []
    while len(got) < len(sent):
        batch = b.recv_many_data(64, timeout=10)
        assert 1 <= len(batch) <= 64
        assert all(type(d) is bytes for d in batch)
        got += batch
    assert got == sent


def test_after_recv_many_left_messages_in_the_inbox(pair):
    """recv_many(1) takes a whole batch and keeps the rest: recv_many_data
    hands those out first, then what the core holds, in order."""
    a, b = pair
    sent = [b"n%d" % i for i in range(300)]
    for f in [a.send_async(addr(b), d) for d in sent]:
        f.result(timeout=10)
    first = b.recv_many(1, timeout=10)
    got = [m.data for m in first]
    while len(got) < len(sent):
        got += b.recv_many_data(1000, timeout=10)
    assert got == sent


def test_releases_held_messages(node_factory):
    """With auto_release off there is no Message to release: each is
    released as its data is handed out, so synchronous sends complete."""
    rx = node_factory(auto_release=False)
    tx = node_factory(synchronous=True, timeout=10.0)
    futs = [tx.send_async(addr(rx), b"s%d" % i) for i in range(100)]
    futs.append(tx.send_async(addr(rx), b"x" * 300_000))  # past the copy buffer
    got: list[bytes] = []
    while len(got) < 101:
        got += rx.recv_many_data(16, timeout=10)
    assert got[:100] == [b"s%d" % i for i in range(100)]
    assert got[100] == b"x" * 300_000
    for f in futs:
        assert f.result(timeout=10) is None  # acknowledged: released


def test_bad_arguments_timeout_and_close(pair):
    a, b = pair
    with pytest.raises(ValueError, match="max_count must be >= 1"):
        b.recv_many_data(0)
    with pytest.raises(TypeError, match="timeout must be a number"):
        b.recv_many_data(4, timeout="1")
    with pytest.raises(chirp.ChirpTimeoutError):
        b.recv_many_data(4, timeout=0.2)
    b.close()
    with pytest.raises(chirp.ClosedError):
        b.recv_many_data(4, timeout=1)
