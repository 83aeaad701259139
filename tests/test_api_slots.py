"""Slots and backpressure: unreleased messages hold back the sender."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.nodes import addr, assert_no_message, target
from support.payloads import number_of, numbered
from support.peer import Peer, PeerError
from support.waits import run_in_thread

import chirp

N = 4


def _drain(node, quiet=1.0, limit=50):
    """Receive until nothing arrives for ``quiet`` seconds; keep messages."""
    got = []
    while len(got) < limit:
        try:
            got.append(node.recv(timeout=quiet))
        except TimeoutError:
            break
    return got


def test_exactly_max_slots_delivered_until_release(node_factory):
    """An asynchronous sender writes N+3 messages at once; a receiver with N
    slots that releases nothing gets exactly N, one more per release."""
    rx = node_factory(synchronous=False, max_slots=N, auto_release=False)
    tx = node_factory(synchronous=False)
    futs = [tx.send_async(addr(rx), numbered(i, 100)) for i in range(N + 3)]
    for f in futs:
        assert f.result(timeout=10) is None  # async: handed to the kernel
    held = [rx.recv(timeout=5.0) for _ in range(N)]
    assert [number_of(m.data) for m in held] == list(range(N))
    assert_no_message(rx, 1.0)  # slots full: the rest waits
    held[0].release()
    nxt = rx.recv(timeout=5.0)
    assert number_of(nxt.data) == N
    assert_no_message(rx, 0.5)  # again full
    for m in held[1:] + [nxt]:
        m.release()
    rest = [rx.recv(timeout=5.0) for _ in range(2)]
    assert [number_of(m.data) for m in rest] == [N + 1, N + 2]
    for m in rest:
        m.release()
    assert_no_message(rx, 0.2)


def test_synchronous_sender_blocked_until_release(node_factory):
    """A synchronous sender's sends succeed only once the receiver releases;
    while all of the receiver's N slots are taken no further message gets
    through."""
    rx = node_factory(synchronous=False, max_slots=N, auto_release=False)
    tx = node_factory(synchronous=True, timeout=20.0)
    total = N + 3
    futs = [tx.send_async(addr(rx), numbered(i, 64)) for i in range(total)]
    held = _drain(rx, quiet=1.0)
    assert 1 <= len(held) <= N, f"received {len(held)} with {N} slots"
    assert [number_of(m.data) for m in held] == list(range(len(held)))
    assert not any(f.done() for f in futs), "acknowledged before release"
    # the first release acknowledges exactly the first message
    held[0].release()
    assert futs[0].result(timeout=5.0) is None
    received = list(held)
    for m in held[1:]:
        m.release()
    deadline = time.monotonic() + 30
    while len(received) < total:
        assert time.monotonic() < deadline, f"only {len(received)} of {total}"
        try:
            m = rx.recv(timeout=5.0)
        except TimeoutError:
            continue
        received.append(m)
        m.release()
    assert [number_of(m.data) for m in received] == list(range(total))
    for f in futs:
        assert f.result(timeout=10.0) is None


def test_synchronous_sender_in_other_process_blocked(node_factory):
    """Same through a peer process doing blocking sends one after another:
    it cannot finish while a message is held, and finishes after release."""
    rx = node_factory(synchronous=False, max_slots=N, auto_release=False)
    total = N + 3
    sender = Peer(
        "send", "--count", total, "--target", target(rx), "--timeout", 20, "--lifetime", 90
    )
    try:
        held = _drain(rx, quiet=1.0)
        assert 1 <= len(held) <= N
        assert sender.proc.poll() is None, "sender finished while blocked"
        with pytest.raises(PeerError):
            sender.read_json(0.5, kind="done")
        received = list(held)
        for m in held:
            m.release()
        while len(received) < total:
            m = rx.recv(timeout=10.0)
            received.append(m)
            m.release()
        assert [number_of(m.data) for m in received] == list(range(total))
        done = sender.read_json(30, kind="done")
        assert done["nerrors"] == 0, done
        assert done["sent"] == total
        assert sender.wait(10) == 0
    finally:
        sender.close()


@pytest.mark.parametrize("identity", [None, b"configured-ident"], ids=["random", "configured"])
def test_out_of_order_release_acknowledges_the_right_send(node_factory, identity):
    """ACKs are matched by identity: releasing the last held message first
    completes exactly that send.  All three are in flight at once: the
    receiver's capability frame opened the window (whatever the sender's
    identity)."""
    rx = node_factory(synchronous=False, max_slots=N, auto_release=False, identity=identity)
    tx = node_factory(synchronous=True, timeout=20.0, identity=identity and identity[::-1])
    futs = [tx.send_async(addr(rx), numbered(i)) for i in range(3)]
    held = _drain(rx, quiet=1.0)
    assert len(held) == 3, f"{len(held)} in flight: the window did not open"
    assert [number_of(m.data) for m in held] == list(range(len(held)))
    last = len(held) - 1
    held[last].release()
    assert futs[last].result(timeout=5.0) is None
    assert not any(f.done() for f in futs[:last])
    for m in held[:last]:
        m.release()
    for m in _drain(rx, quiet=0.5):
        m.release()
    for f in futs:
        assert f.result(timeout=10.0) is None


def test_the_receiver_announces_its_window(node_factory):
    """A receiver with max_inflight=2 announces a window of 2: a sender
    allowed 16 keeps 2 in flight, and the third goes once one is
    released."""
    rx = node_factory(synchronous=False, max_slots=N, auto_release=False, max_inflight=2)
    tx = node_factory(synchronous=True, timeout=20.0, max_inflight=16)
    futs = [tx.send_async(addr(rx), numbered(i)) for i in range(3)]
    held = _drain(rx, quiet=1.0)
    assert [number_of(m.data) for m in held] == [0, 1]
    held[0].release()
    assert futs[0].result(timeout=5.0) is None
    third = rx.recv(timeout=5.0)
    assert number_of(third.data) == 2
    held[1].release()
    third.release()
    assert [f.result(timeout=5.0) for f in futs] == [None] * 3


def test_a_window_wider_than_libchirps_32(node_factory):
    """300 slots and a window of 300 (libchirp allows 32 slots): 300
    acknowledged messages are in flight at once, the 301st waits for a
    release, and releases in reverse order acknowledge the right sends."""
    wide = 300
    rx = node_factory(synchronous=False, max_slots=wide, max_inflight=wide, auto_release=False)
    tx = node_factory(synchronous=True, timeout=20.0, max_inflight=wide)
    futs = [tx.send_async(addr(rx), numbered(i)) for i in range(wide + 3)]
    held = _drain(rx, quiet=1.0, limit=wide + 3)
    assert [number_of(m.data) for m in held] == list(range(wide))
    assert not any(f.done() for f in futs)
    for m in reversed(held[1:]):
        m.release()
    assert [f.result(timeout=10.0) for f in futs[1:wide]] == [None] * (wide - 1)
    assert not futs[0].done()
    rest = _drain(rx, quiet=0.5)
    assert [number_of(m.data) for m in rest] == [wide, wide + 1, wide + 2]
    for m in [held[0], *rest]:
        m.release()
    assert [f.result(timeout=10.0) for f in futs] == [None] * (wide + 3)


def test_window_is_at_most_the_slots_so_acks_behind_are_read(node_factory):
    """A receiver with 1 slot announces a window of 1 (not its
    max_inflight of 16): had the sender written a second message, the
    receiver's reader would stop at it with its slot taken, and the ACK
    of the receiver's answer behind it in the stream would never be read,
    while the receiver waits for that ACK before it releases (what a
    router does).  Found by the rule-of-thumb property test."""
    rx = node_factory(synchronous=True, max_slots=1, auto_release=False, timeout=3.0)
    tx = node_factory(synchronous=True, max_slots=1, timeout=10.0)
    warm = tx.send_async(addr(rx), b"warm")
    rx.recv(timeout=5.0).release()  # the capability frames are known now
    assert warm.result(timeout=5.0) is None
    futs = [tx.send_async(addr(rx), numbered(i)) for i in range(2)]
    first = rx.recv(timeout=5.0)
    with ThreadPoolExecutor(1) as pool:
        answers = pool.submit(tx.recv, timeout=5.0)
        rx.reply(first, b"answer")  # waits for tx's ACK of the answer
        answer = answers.result(timeout=5.0)
    with answer:
        assert answer.data == b"answer"
    first.release()
    assert futs[0].result(timeout=5.0) is None
    with rx.recv(timeout=5.0) as second:
        assert number_of(second.data) == 1
    assert futs[1].result(timeout=5.0) is None


def test_async_send_times_out_when_receiver_stalls(node_factory):
    """Asynchronous send waits until the message is written: with the
    receiver's only slot held it stops reading, a message bigger than the
    socket buffers cannot be written, and the send fails with
    ChirpTimeoutError after about ``timeout``.  Afterwards the pair works."""
    rx = node_factory(synchronous=False, max_slots=1, auto_release=False)
    tx = node_factory(synchronous=False, timeout=1.0)
    tx.send(addr(rx), b"first")
    held = rx.recv(timeout=5.0)
    big = b"x" * (32 * 1024 * 1024)
    t0 = time.monotonic()
    with pytest.raises(chirp.ChirpTimeoutError):
        for _ in range(4):
            tx.send(addr(rx), big)
    took = time.monotonic() - t0
    assert took < 4 * (1.0 + 3.0), took
    held.release()
    deadline = time.monotonic() + 10
    while True:
        try:
            tx.send(addr(rx), b"after")
            break
        except chirp.ChirpError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    while True:
        m = rx.recv(timeout=5.0)
        m.release()
        if m.data == b"after":
            break


def test_with_statement_releases(node_factory):
    rx = node_factory(synchronous=False, max_slots=1, auto_release=False)
    tx = node_factory(synchronous=True, timeout=10.0)
    f0 = tx.send_async(addr(rx), b"first")
    f1 = tx.send_async(addr(rx), b"second")
    msg = rx.recv(timeout=5.0)
    assert msg.data == b"first"
    assert not f0.done()
    with msg as m:
        assert m is msg
        assert m.data == b"first"
    assert f0.result(timeout=5.0) is None  # the ACK went out on exit
    with rx.recv(timeout=5.0) as m2:
        assert m2.data == b"second"
    assert f1.result(timeout=5.0) is None


def test_with_statement_releases_on_exception(node_factory):
    rx = node_factory(synchronous=False, max_slots=1, auto_release=False)
    tx = node_factory(synchronous=True, timeout=10.0)
    f0 = tx.send_async(addr(rx), b"x")
    with pytest.raises(RuntimeError):
        with rx.recv(timeout=5.0):
            raise RuntimeError("boom")
    assert f0.result(timeout=5.0) is None


def test_release_is_idempotent(node_factory):
    """Releasing twice frees one slot, not two."""
    rx = node_factory(synchronous=False, max_slots=1, auto_release=False)
    tx = node_factory(synchronous=False)
    for i in range(3):
        tx.send_async(addr(rx), numbered(i)).result(timeout=10)
    m0 = rx.recv(timeout=5.0)
    m0.release()
    m0.release()
    m0.release()
    m1 = rx.recv(timeout=5.0)
    assert number_of(m1.data) == 1
    # m1 holds the only slot: a double-counted release would let m2 in
    assert_no_message(rx, 0.7)
    m1.release()
    m2 = rx.recv(timeout=5.0)
    assert number_of(m2.data) == 2
    m2.release()


def test_acks_of_released_messages_survive_close(node_factory):
    """ACKs queued by release() go out before close() tears the connection
    down: a synchronous sender sees every released message succeed."""
    n = 3000
    for _trial in range(4):  # the loss is timing dependent
        rx = node_factory(synchronous=False)
        tx = node_factory(synchronous=True, timeout=10.0)
        futs = [tx.send_async(addr(rx), b"%d" % i) for i in range(n)]
        for i in range(n):
            m = rx.recv(timeout=10.0)
            assert m.data == b"%d" % i
            m.release()
        rx.close()
        failed = []
        for i, f in enumerate(futs):
            exc = f.exception(timeout=20.0)
            if exc is not None:
                failed.append((i, exc))
        assert not failed, f"{len(failed)} released messages reported as failed: {failed[:3]!r}"
        tx.close()


def test_large_messages_held_in_slots(node_factory):
    """Messages far larger than the read buffer: still exactly max_slots
    held, the rest waits, contents intact."""
    size = 1024 * 1024 + 7
    slots = 2
    rx = node_factory(synchronous=False, max_slots=slots, auto_release=False)
    tx = node_factory(synchronous=False, timeout=20.0)
    futs = [tx.send_async(addr(rx), numbered(i, size)) for i in range(6)]
    held = [rx.recv(timeout=10.0) for _ in range(slots)]
    assert_no_message(rx, 0.7)
    got = list(held)
    while len(got) < 6:
        held.pop(0).release()
        m = rx.recv(timeout=10.0)
        held.append(m)
        got.append(m)
    for m in held:
        m.release()
    for i, m in enumerate(got):
        assert m.data == numbered(i, size)
    for f in futs:
        assert f.result(timeout=20.0) is None


def test_late_release_after_sender_timeout(node_factory):
    """The receiver holds a message past the synchronous sender's timeout:
    the send fails with ChirpTimeoutError; the late ACK that follows is
    harmless and the pair keeps working."""
    rx = node_factory(synchronous=False, auto_release=False)
    tx = node_factory(synchronous=True, timeout=0.5)
    fut = tx.send_async(addr(rx), b"slow")
    msg = rx.recv(timeout=5.0)
    with pytest.raises(chirp.ChirpTimeoutError):
        fut.result(timeout=10.0)
    msg.release()  # late ACK
    for i in range(3):
        f = tx.send_async(addr(rx), b"after %d" % i)
        m = rx.recv(timeout=5.0)
        assert m.data == b"after %d" % i
        m.release()
        assert f.result(timeout=5.0) is None


@pytest.mark.parametrize("buffer_size", [1024, 4096])
def test_small_read_buffer_large_and_many_messages(node_factory, buffer_size):
    """A receiver with a tiny read buffer still reassembles big messages and
    many small ones correctly, with slots held."""
    rx = node_factory(synchronous=False, buffer_size=buffer_size, max_slots=3, auto_release=False)
    tx = node_factory(synchronous=True, timeout=10.0)
    sizes = [0, 1, 1023, 1024, 1025, 70_000, 3, 65535, 2 * 1024 * 1024, 5]
    futs = [
        tx.send_async(addr(rx), numbered(i, s), header=b"H" * (i * 100))
        for i, s in enumerate(sizes)
    ]
    for i, s in enumerate(sizes):
        m = rx.recv(timeout=10.0)
        assert m.data == numbered(i, s)
        assert m.header == b"H" * (i * 100)
        m.release()
    for f in futs:
        assert f.result(timeout=10.0) is None


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_answers_to_requests_do_not_hold_slots(node_factory, sync):
    """With auto_release=False and few slots, answers to requests (which
    never show up in recv()) do not use up the requester's slots: many
    requests in a row all get their answer."""
    server = node_factory(synchronous=sync, timeout=3.0)
    client = node_factory(synchronous=sync, timeout=3.0, auto_release=False, max_slots=2)
    t, box = run_in_thread(_echo_n, server, 12)
    for i in range(12):
        ans = client.request(addr(server), b"%d" % i, timeout=5.0)
        assert ans.data == b"%d" % i
    t.join(timeout=10)
    assert "error" not in box, box.get("error")


def _echo_n(node, n):
    for _ in range(n):
        m = node.recv(timeout=10.0)
        node.reply(m, m.data)
        m.release()


def test_data_survives_release(node_factory):
    rx = node_factory(synchronous=False, auto_release=False)
    tx = node_factory(synchronous=False)
    payload = numbered(7, 5000)
    tx.send_async(addr(rx), payload, header=b"hh").result(timeout=10)
    msg = rx.recv(timeout=5.0)
    msg.release()
    assert msg.data == payload
    assert msg.header == b"hh"
    assert isinstance(msg.data, bytes)


def test_auto_release_frees_slots(node_factory):
    """With auto_release (the default) a receiver that never calls release()
    and keeps references to the messages still lets a synchronous sender go
    on; release() on such a message is a harmless no-op."""
    rx = node_factory(max_slots=1, synchronous=False)
    assert rx.config.auto_release is True
    tx = node_factory(synchronous=True, timeout=10.0)
    n = 8

    def send_all():
        for i in range(n):
            tx.send(addr(rx), numbered(i))

    t, box = run_in_thread(send_all)
    kept = [rx.recv(timeout=10.0) for _ in range(n)]
    t.join(timeout=20)
    assert not t.is_alive()
    assert "error" not in box, box.get("error")
    assert [number_of(m.data) for m in kept] == list(range(n))
    for m in kept:
        m.release()  # already released: no error


def test_unreleased_messages_block_only_their_connection(node_factory):
    """Slots are per connection: a second sender is served while the first
    one's slots are all held."""
    rx = node_factory(synchronous=False, max_slots=1, auto_release=False)
    tx1 = node_factory(synchronous=False)
    tx2 = node_factory(synchronous=False)
    tx1.send_async(addr(rx), b"one-a").result(timeout=10)
    tx1.send_async(addr(rx), b"one-b").result(timeout=10)
    a = rx.recv(timeout=5.0)
    assert a.data == b"one-a"
    tx2.send_async(addr(rx), b"two").result(timeout=10)
    b = rx.recv(timeout=5.0)
    assert b.data == b"two"
    assert b.remote_identity == tx2.identity
    a.release()
    c = rx.recv(timeout=5.0)
    assert c.data == b"one-b"
    b.release()
    c.release()


@settings(
    max_examples=12,
    deadline=None,
    # each example closes its nodes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=80_000), min_size=1, max_size=14),
    slots=st.integers(min_value=1, max_value=5),
    choices=st.randoms(use_true_random=False),
)
def test_random_release_order(node_factory, sizes, slots, choices):
    """Whatever the sizes and the order of releases, a receiver with
    ``slots`` slots holds exactly min(slots, outstanding) messages and all
    arrive intact and in order."""
    rx = node_factory(synchronous=False, max_slots=slots, auto_release=False)
    tx = node_factory(synchronous=False, timeout=20.0)
    try:
        futs = [tx.send_async(addr(rx), numbered(i, s)) for i, s in enumerate(sizes)]
        held, got = [], []
        while len(got) < len(sizes):
            want = min(slots, len(sizes) - len(got) + len(held))
            while len(held) < want:
                m = rx.recv(timeout=10.0)
                held.append(m)
                got.append(m)
            # release a random non-empty subset
            k = choices.randint(1, len(held))
            for m in choices.sample(held, k):
                m.release()
                held.remove(m)
        for m in held:
            m.release()
        assert [number_of(m.data) for m in got] == list(range(len(sizes)))
        assert [m.data for m in got] == [numbered(i, s) for i, s in enumerate(sizes)]
        for f in futs:
            assert f.result(timeout=20) is None
    finally:
        tx.close()
        rx.close()
