"""Shared fixtures for chirp's API tests.

Rules kept by every test here:
- nodes always use ``port=0`` (the OS picks) so tests can run in parallel;
- every blocking call has a timeout, every node is closed and every child
  process is stopped in a finalizer;
- a per-test watchdog (faulthandler) dumps all stacks and ends the run if a
  test hangs anyway, so the suite can never hang (pytest-timeout is not used).
"""

import faulthandler
import os
import socket
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import peer as peerlib  # noqa: E402  (tests/peer.py, does not import chirp)

LOCAL = "127.0.0.1"
# Hard limit per test; a hang prints every thread's stack and exits.
TEST_HANG_LIMIT = float(os.environ.get("CHIRP_TEST_HANG_LIMIT", "150"))


@pytest.fixture(autouse=True)
def _hang_guard(request):
    """Only for this directory's test_api_* modules: other suites below
    tests/ keep their own time limits."""
    if not request.node.path.name.startswith("test_api_"):
        yield
        return
    faulthandler.dump_traceback_later(TEST_HANG_LIMIT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def chirp_mod():
    import chirp

    return chirp


def _close_quietly(node):
    try:
        node.close()
    except Exception:
        pass


def new_node(**kw):
    """A node with the test defaults (port 0, plaintext, 5 s timeout)."""
    import chirp

    kw.setdefault("port", 0)
    kw.setdefault("disable_encryption", True)
    kw.setdefault("timeout", 5.0)
    return chirp.Node(**kw)


@pytest.fixture
def node_factory():
    """``make(**kw)`` returns a new node; all are closed after the test."""
    nodes = []

    def make(**kw):
        n = new_node(**kw)
        nodes.append(n)
        return n

    yield make
    for n in reversed(nodes):
        _close_quietly(n)


@pytest.fixture
def pair():
    """Two asynchronous nodes (a, b), closed after the test."""
    with new_node(synchronous=False) as a, new_node(synchronous=False) as b:
        yield a, b


@pytest.fixture
def peer_factory():
    """``spawn(mode, *args)`` returns a running ``peer.PeerProcess``."""
    peers = []

    def spawn(mode, *args, **kw):
        p = peerlib.PeerProcess(mode, *args, **kw)
        peers.append(p)
        return p

    yield spawn
    for p in peers:
        p.stop()


def addr(node):
    return (LOCAL, node.port)


def target(node):
    """The node's address as peer.py's --target HOST:PORT."""
    return f"{LOCAL}:{node.port}"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((LOCAL, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Blackhole:
    """A listening socket that never accepts: connects succeed (the kernel
    completes them from the backlog) but nothing is ever answered."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOCAL, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.address = (LOCAL, self.port)

    def close(self):
        self.sock.close()


class SilentPeer:
    """Accepts connections, answers the chirp handshake, then reads and
    discards everything: never sends an ACK, never closes."""

    def __init__(self, identity=b"S" * 16):
        import struct

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOCAL, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = (LOCAL, self.port)
        self.handshake = struct.pack(">H16s", self.port, identity)
        self.received = bytearray()
        self.conns = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            c.settimeout(0.2)
            try:
                c.sendall(self.handshake)
            except OSError:
                pass
            self.conns.append(c)
            threading.Thread(target=self._drain, args=(c,), daemon=True).start()

    def _drain(self, c):
        while not self._stop.is_set():
            try:
                b = c.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not b:
                return
            with self._lock:
                self.received += b

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


@pytest.fixture
def blackhole():
    b = Blackhole()
    yield b
    b.close()


@pytest.fixture
def silent_peer():
    s = SilentPeer()
    yield s
    s.close()


def recv_n(node, n, timeout=30.0, release=True):
    """Receive ``n`` messages within ``timeout`` seconds in total."""
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


def assert_no_message(node, timeout=0.3):
    """Nothing arrives within ``timeout`` seconds (recv raises TimeoutError)."""
    try:
        msg = node.recv(timeout=timeout)
    except TimeoutError:
        return
    msg.release()
    raise AssertionError(
        f"unexpected message: data={bytes(msg.data[:64])!r} "
        f"header={bytes(msg.header[:64])!r} from {msg.address}:{msg.port}"
    )


def roundtrip(tx, rx, data=b"ping", header=b"", timeout=10.0):
    """tx sends to rx, rx receives; returns the received message (released).

    Uses send_async so a synchronous sender does not block the single test
    thread that has to receive (and so release) the message."""
    fut = tx.send_async(addr(rx), data, header=header)
    msg = rx.recv(timeout=timeout)
    msg.release()
    assert fut.result(timeout=timeout) is None
    return msg


def run_in_thread(fn, *args, **kw):
    """Start ``fn`` in a daemon thread; returns (thread, box) where box has
    'result' or 'error' once the thread ends."""
    box = {}

    def target():
        try:
            box["result"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: B902 - reported to the test
            box["error"] = exc
        finally:
            box["end"] = time.monotonic()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box
