"""chirp nodes for the tests: the node factory and what tests do with nodes.

Tests get nodes from the ``node_factory`` fixture (tests/conftest.py),
which is a NodeFactory: port 0, plaintext, a 5 s timeout unless the test
says otherwise, and every node it made is closed after the test.  chirp is
imported only when a node is made, so child processes that must not
import chirp can import this module's neighbours freely.
"""

from __future__ import annotations

import time
import weakref

from .net import LOCAL
from .waits import run_in_thread

DEFAULTS = {"port": 0, "disable_encryption": True, "timeout": 5.0}


class NodeFactory:
    """factory(**options) -> a chirp.Node made with DEFAULTS, updated by the
    factory's own defaults, updated by options.  Given a chirp.Config
    (positional, or config=), the node is made from that alone.  close()
    closes every node it made."""

    def __init__(self, **defaults):
        self.defaults = {**DEFAULTS, **defaults}
        self._nodes: list = []
        self._weak: list = []

    def _make(self, args, kw):
        import chirp

        if args or "config" in kw:
            return chirp.Node(*args, **kw)
        return chirp.Node(**{**self.defaults, **kw})

    def __call__(self, *config, **kw):
        node = self._make(config, kw)
        self._nodes.append(node)
        return node

    def collectable(self, **kw):
        """A node the factory does not keep alive: for tests of what the
        garbage collector does with a node nobody refers to.  Closed after
        the test if it is still there."""
        node = self._make((), kw)
        self._weak.append(weakref.ref(node))
        return node

    def close(self) -> None:
        nodes = [r() for r in self._weak] + self._nodes[::-1]
        self._nodes.clear()
        self._weak.clear()
        for n in nodes:
            if n is None:
                continue
            try:
                n.close()
            except Exception:
                pass


def addr(node) -> tuple[str, int]:
    """The node's address on 127.0.0.1."""
    return (LOCAL, node.port)


def target(node) -> str:
    """The node's address as HOST:PORT (support.peer's --target)."""
    return f"{LOCAL}:{node.port}"


def recv_n(node, n: int, timeout: float = 30.0, release: bool = True) -> list:
    """Receive n messages within timeout seconds in total."""
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"received only {len(out)} of {n} messages within {timeout:.1f} s")
        try:
            msg = node.recv(timeout=min(left, 5.0))
        except TimeoutError:
            continue
        out.append(msg)
        if release:
            msg.release()
    return out


def assert_no_message(node, timeout: float = 0.3) -> None:
    """Nothing arrives within timeout seconds (recv raises TimeoutError)."""
    try:
        msg = node.recv(timeout=timeout)
    except TimeoutError:
        return
    msg.release()
    raise AssertionError(
        f"unexpected message: data={bytes(msg.data[:64])!r} "
        f"header={bytes(msg.header[:64])!r} from {msg.address}:{msg.port}"
    )


def close_while_blocked(node, call, *args, linger=None, **kw):
    """Start call(*args, **kw) in a thread; once it is blocked (0.3 s), close
    node (with linger).  The call must then end within 5 s.  Returns (box,
    seconds close() took), box holding what the call returned ('result') or
    raised ('error')."""
    t, box = run_in_thread(call, *args, **kw)
    time.sleep(0.3)  # let the call get under way (setup, not an assertion)
    assert t.is_alive(), f"{call.__name__}() returned before close(): {box!r}"
    t0 = time.monotonic()
    node.close(linger=linger)
    took = time.monotonic() - t0
    t.join(timeout=5.0)
    assert not t.is_alive(), f"{call.__name__}() still blocked after close()"
    return box, took


def roundtrip(tx, rx, data: bytes = b"ping", header: bytes = b"", timeout: float = 10.0):
    """tx sends to rx, rx receives; returns the received message (released).

    Uses send_async so a synchronous sender does not block the single test
    thread that has to receive (and so release) the message."""
    fut = tx.send_async(addr(rx), data, header=header)
    msg = rx.recv(timeout=timeout)
    msg.release()
    assert fut.result(timeout=timeout) is None
    return msg
