"""Node.fileno(): an fd that is readable exactly while received messages
wait, for selectors and event loops."""

import select
import selectors
import time

import pytest
from support.nodes import addr

import chirp


def _readable(fd: int, timeout: float = 0.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def _wait_readable(fd: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _readable(fd, 0.05):
            return True
    return False


def test_readable_while_messages_wait(pair):
    a, b = pair
    fd = b.fileno()
    assert not _readable(fd)
    a.send(addr(b), b"one")
    assert _wait_readable(fd)
    assert b.recv(timeout=0).data == b"one"
    assert not _readable(fd)


def test_asked_after_messages_arrived(pair):
    """The fd is kept up to date only once asked for; asked late, it is
    readable at once for messages that already wait."""
    a, b = pair
    a.send(addr(b), b"early")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until it is in b's queue
        time.sleep(0.01)
        fd = b.fileno()
        if _readable(fd):
            break
    assert _readable(fd)
    assert b.recv(timeout=0).data == b"early"
    assert not _readable(fd)


def test_selector_loop_receives_everything(pair):
    """Small recv_many calls after each readiness get every message: none
    is left behind in Python while the fd says nothing waits."""
    a, b = pair
    fd = b.fileno()
    assert a.send_many(addr(b), [b"%d" % i for i in range(8)]).result(timeout=10) is None
    time.sleep(0.3)  # all eight wait in b's queue now
    got = []
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + 5
        while len(got) < 8 and time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                got += [m.data for m in b.recv_many(2, timeout=0)]
    assert got == [b"%d" % i for i in range(8)]
    assert not _readable(fd)


def test_closed_node_has_no_fd(node_factory):
    node = node_factory()
    node.close()
    with pytest.raises(chirp.ClosedError):
        node.fileno()


def test_fd_stays_open_and_readable_after_close(node_factory):
    """A selector waiting on the fd is woken by close and can still use
    the fd: it stays open (readable) as long as the node object exists."""
    import os

    node = node_factory()
    fd = node.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    try:
        node.close()
        assert sel.select(timeout=10), "close did not wake the selector"
        os.fstat(fd)  # still open
        with pytest.raises(chirp.ClosedError):
            node.recv(timeout=0)
        with pytest.raises(chirp.ClosedError):
            node.fileno()
    finally:
        sel.close()
