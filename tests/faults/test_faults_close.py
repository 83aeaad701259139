"""close() with messages in flight: every pending send completes, promptly.

- The sender closes while its synchronous sends wait for ACKs that a
  receiver (auto_release=False, max_slots=2) holds back: close() returns
  within a bounded time and every pending send fails with ClosedError.
- The receiver closes while the sender is blocked on its full slot pool
  (TCP backpressure): the sender's sends fail promptly with an error, long
  before their send timeout, instead of hanging.
"""

import collections
import threading
import time

import pytest
from support.net import LOCAL
from support.waits import wait_futures

pytestmark = pytest.mark.hang_limit(120)


def _addr(node):
    return (LOCAL, node.port)


class Blocked:
    """A thread blocked in node.send(); records how it ended."""

    def __init__(self, node, addr, data):
        self.result = None
        self.ended = None
        self.thread = threading.Thread(target=self._run, args=(node, addr, data), daemon=True)
        self.thread.start()

    def _run(self, node, addr, data):
        try:
            node.send(addr, data)
            self.result = "ok"
        except BaseException as e:
            self.result = e
        self.ended = time.monotonic()

    def join(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "a blocking send() hangs"
        return self.result


def test_sender_close_fails_pending_sends(node_factory):
    import chirp

    send_timeout = 5.0
    receiver = node_factory(synchronous=False, auto_release=False, max_slots=2)
    sender = node_factory(synchronous=True, timeout=send_timeout)
    futs = [sender.send_async(_addr(receiver), b"%d" % i) for i in range(10)]
    held = [receiver.recv(timeout=5) for _ in range(2)]
    blocked = Blocked(sender, _addr(receiver), b"blocking")
    time.sleep(0.3)
    assert not any(f.done() for f in futs), "a send completed although nothing was released"
    assert blocked.result is None

    # A linger shorter than the send timeout: they fail because it ran out.
    t0 = time.monotonic()
    sender.close(linger=0.5)
    took = time.monotonic() - t0
    assert took < 0.5 + 1.0, f"close() took {took:.2f}s"
    assert not wait_futures(futs, timeout=2.0), "a pending send never completed after close()"
    outcomes = [f.exception(timeout=0) for f in futs]
    kinds = collections.Counter(type(e).__name__ for e in outcomes)
    b = blocked.join(timeout=2.0)
    print(
        f"\n[close] sender close() took {took:.3f}s; pending sends: {dict(kinds)}; "
        f"blocked send(): {type(b).__name__}"
    )
    assert all(isinstance(e, chirp.ClosedError) for e in outcomes), outcomes
    assert all("linger of 0.5 s ran out" in str(e) for e in outcomes), outcomes[0]
    assert isinstance(b, chirp.ClosedError), repr(b)
    try:
        sender.send_async(_addr(receiver), b"late")
        raise AssertionError("send on a closed node did not raise")
    except chirp.ClosedError:
        pass

    # The receiver gives the held slots back: no ACK to send anywhere, no
    # harm; it keeps working for other senders.
    for m in held:
        assert m.data in {b"0", b"1"}
        m.release()
    other = node_factory(synchronous=True, timeout=5.0)
    f = other.send_async(_addr(receiver), b"after")
    deadline = time.monotonic() + 5
    seen = []
    while time.monotonic() < deadline:
        m = receiver.recv(timeout=max(0.01, deadline - time.monotonic()))
        seen.append(m.data)
        m.release()
        if m.data == b"after":
            break
    assert b"after" in seen
    assert f.result(timeout=5) is None


def test_receiver_close_unblocks_sender_on_full_slots(node_factory):
    import chirp

    send_timeout = 10.0  # far longer than what the test allows
    receiver = node_factory(synchronous=False, auto_release=False, max_slots=2)
    sender = node_factory(synchronous=True, timeout=send_timeout)
    big = b"x" * (256 * 1024)
    futs = [sender.send_async(_addr(receiver), big) for _ in range(32)]  # 8 MiB
    held = [receiver.recv(timeout=5) for _ in range(2)]
    blocked = Blocked(sender, _addr(receiver), b"blocking")
    time.sleep(0.5)
    assert not any(f.done() for f in futs), "a send completed although nothing was released"

    t0 = time.monotonic()
    receiver.close()
    close_took = time.monotonic() - t0
    not_done = wait_futures(futs, timeout=3.0)
    settled = time.monotonic() - t0
    assert not not_done, (
        f"{len(not_done)} sends still pending {settled:.1f}s after the receiver closed"
    )
    b = blocked.join(timeout=3.0)
    outcomes = [f.exception(timeout=0) for f in futs]
    kinds = collections.Counter(type(e).__name__ if e else "ok" for e in outcomes)
    print(
        f"\n[close] receiver close() took {close_took:.3f}s; sender's sends settled after "
        f"{settled:.3f}s: {dict(kinds)}; blocked send(): {b!r}"
    )
    assert close_took < 2.0
    assert all(isinstance(e, chirp.ChirpError) for e in outcomes), kinds
    assert isinstance(b, chirp.ChirpError), repr(b)
    assert not any(isinstance(e, chirp.ChirpTimeoutError) for e in outcomes), (
        "the sender waited for its timeout instead of seeing the closed connection"
    )
    for m in held:  # released after the close: a no-op, not a crash
        m.release()
