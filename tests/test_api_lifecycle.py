"""Node lifecycle: resources come back, blocking calls wake up, odd uses."""

import gc
import os
import time

import pytest
from support.child import Child, ChildError
from support.net import LOCAL
from support.nodes import addr, close_while_blocked, roundtrip
from support.waits import run_in_thread

import chirp


def _fds():
    return len(os.listdir("/proc/self/fd"))


def _os_threads():
    return len(os.listdir("/proc/self/task"))


def _settle(fn, target, timeout=5.0):
    """fn() drops to <= target within timeout (threads/fds close async)."""
    deadline = time.monotonic() + timeout
    while fn() > target and time.monotonic() < deadline:
        time.sleep(0.05)
    return fn()


def test_no_fd_or_thread_leak_over_many_nodes(node_factory):
    # warm up anything created once per process
    with node_factory.collectable() as a, node_factory.collectable() as b:
        roundtrip(a, b)
    gc.collect()
    fds0, threads0 = _fds(), _os_threads()
    for i in range(25):
        a = node_factory.collectable(synchronous=bool(i % 2))
        b = node_factory.collectable(synchronous=not (i % 2))
        roundtrip(a, b, b"%d" % i)
        roundtrip(b, a, b"%d" % i)
        b.close()
        a.close()
    gc.collect()
    fds = _settle(_fds, fds0 + 2)
    threads = _settle(_os_threads, threads0 + 1)
    assert fds <= fds0 + 2, f"file descriptors leak: {fds0} -> {fds}"
    assert threads <= threads0 + 1, f"threads leak: {threads0} -> {threads}"


def test_no_leak_over_many_connections(node_factory):
    """Many short-lived peers against one long-lived node: once they are
    closed the node's connections (fds) go away."""
    server = node_factory(synchronous=False, timeout=0.3, reuse_time=0.5)
    with node_factory.collectable(synchronous=False) as warm:  # warm up
        roundtrip(warm, server)
    gc.collect()
    fds0 = _fds()
    for i in range(30):
        with node_factory.collectable(synchronous=False) as c:
            roundtrip(c, server, b"%d" % i)
    fds = _settle(_fds, fds0 + 2, timeout=10.0)
    assert fds <= fds0 + 2, f"connections not closed: {fds0} -> {fds} fds"


def test_recv_without_timeout_waits_for_message(node_factory):
    rx = node_factory()
    tx = node_factory(synchronous=False)
    t, box = run_in_thread(rx.recv)  # timeout=None: wait as long as needed
    time.sleep(0.4)
    assert t.is_alive(), f"recv() returned without a message: {box!r}"
    tx.send(addr(rx), b"finally")
    t.join(timeout=5.0)
    assert not t.is_alive()
    assert box["result"].data == b"finally"


def test_send_to_self(node_factory):
    for sync in (True, False):
        node = node_factory(synchronous=sync, timeout=2.0)
        fut = node.send_async((LOCAL, node.port), b"to myself")
        msg = node.recv(timeout=5.0)
        assert msg.data == b"to myself"
        assert msg.port == node.port
        assert msg.remote_identity == node.identity
        msg.release()
        assert fut.result(timeout=5.0) is None


def test_message_attributes_types(node_factory):
    rx = node_factory()
    tx = node_factory()
    msg = roundtrip(tx, rx, b"typed", header=b"hdr")
    assert type(msg.data) is bytes and type(msg.header) is bytes
    assert type(msg.identity) is bytes and len(msg.identity) == 16
    assert type(msg.remote_identity) is bytes
    assert len(msg.remote_identity) == 16
    assert type(msg.serial) is int and msg.serial >= 1
    assert type(msg.port) is int and msg.port == tx.port
    assert type(msg.address) is str and msg.address == LOCAL
    repr(msg)  # does not fail
    repr(rx)


def test_node_reopen_same_port_with_traffic(node_factory):
    """Close a node that had live connections, then bind its port again."""
    a = node_factory(synchronous=False)
    port = a.port
    b = node_factory(synchronous=False)
    roundtrip(b, a)
    roundtrip(a, b)
    a.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            a2 = node_factory(port=port, synchronous=False)
            break
        except (OSError, chirp.ChirpError):
            assert time.monotonic() < deadline, "port not free after close()"
            time.sleep(0.1)
    # b's old connection is dead; sending again reaches the new node.  An
    # asynchronous send succeeds once written: one made before b saw the
    # old connection close went into it and is lost, so send again until
    # the new node has the message.
    deadline = time.monotonic() + 15
    while True:
        try:
            b.send(addr(a2), b"hello again")
            msg = a2.recv(timeout=1.0)
            break
        except chirp.ChirpError:  # ChirpTimeoutError included
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert msg.data == b"hello again"


def test_close_during_request_wakes_caller(node_factory, silent_peer):
    node = node_factory(synchronous=False, timeout=30.0)
    box, _ = close_while_blocked(node, node.request, silent_peer.address, b"q", timeout=30.0)
    assert isinstance(box.get("error"), chirp.ChirpError), box


def test_many_nodes_at_once(node_factory):
    nodes = [node_factory(synchronous=False) for _ in range(20)]
    hub = node_factory(synchronous=False)
    for n in nodes:
        n.send(addr(hub), n.identity)
    got = set()
    for _ in nodes:
        m = hub.recv(timeout=5.0)
        assert m.data == m.remote_identity
        got.add(m.data)
    assert got == {n.identity for n in nodes}


@pytest.mark.parametrize("count", [1, 5])
def test_closing_node_with_unreleased_messages(node_factory, count):
    rx = node_factory(auto_release=False, synchronous=False)
    tx = node_factory(synchronous=False)
    for i in range(count):
        tx.send(addr(rx), b"%d" % i)
    held = [rx.recv(timeout=5.0) for _ in range(count)]
    t0 = time.monotonic()
    rx.close()
    assert time.monotonic() - t0 < 5.0
    assert [m.data for m in held] == [b"%d" % i for i in range(count)]
    for m in held:
        m.release()
    del held
    gc.collect()


def test_thread_count_settles_after_close(node_factory):
    base = _os_threads()
    nodes = [node_factory.collectable() for _ in range(5)]
    assert _os_threads() > base  # each node runs its own loop thread
    for n in nodes:
        n.close()
    gc.collect()
    assert _settle(_os_threads, base) <= base


def test_gc_of_unreferenced_node_releases_port(node_factory):
    n = node_factory.collectable()
    port = n.port
    del n
    gc.collect()
    deadline = time.monotonic() + 5
    while True:
        try:
            n2 = node_factory.collectable(port=port)
            n2.close()
            break
        except (OSError, chirp.ChirpError):
            assert time.monotonic() < deadline, "a garbage-collected node keeps its port"
            time.sleep(0.1)


def test_threads_not_blocked_by_gil(node_factory):
    """The loop runs without Python: traffic flows while the main thread
    busy-loops in Python code."""
    rx = node_factory(synchronous=False)
    tx = node_factory(synchronous=False)
    futs = [tx.send_async(addr(rx), b"%d" % i) for i in range(200)]
    t, box = run_in_thread(lambda: [f.result(timeout=10) for f in futs])
    x = 0
    deadline = time.monotonic() + 10
    while t.is_alive() and time.monotonic() < deadline:
        x += 1  # pure Python work holding the GIL between switches
    t.join(timeout=5)
    assert "error" not in box, box.get("error")
    for i in range(200):
        assert rx.recv(timeout=5.0).data == b"%d" % i


CTRL_C_SCRIPTS = {
    "recv": """
        import chirp
        n = chirp.Node(port=0, disable_encryption=True)
        print("BLOCKING", flush=True)
        n.recv()
    """,
    "send": """
        import socket, chirp
        lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(8)
        n = chirp.Node(port=0, disable_encryption=True, timeout=60.0, linger=1.0)
        print("BLOCKING", flush=True)
        n.send(("127.0.0.1", lst.getsockname()[1]), b"into a blackhole")
    """,
    "request": """
        import socket, chirp
        lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(8)
        n = chirp.Node(port=0, disable_encryption=True, timeout=60.0, linger=1.0)
        print("BLOCKING", flush=True)
        n.request(("127.0.0.1", lst.getsockname()[1]), b"q", timeout=60.0)
    """,
}


@pytest.mark.parametrize("call", sorted(CTRL_C_SCRIPTS))
def test_ctrl_c_interrupts_blocking_call(call):
    """SIGINT during a blocking recv/send/request raises KeyboardInterrupt
    promptly and the process exits."""
    import signal
    import sys
    import textwrap

    child = Child([sys.executable, "-u", "-c", textwrap.dedent(CTRL_C_SCRIPTS[call])])
    try:
        # the child prints before blocking
        assert child.readline(30, "BLOCKING") == "BLOCKING", child.describe()
        time.sleep(0.5)  # let it enter the blocking call (setup)
        child.send_signal(signal.SIGINT)
        try:
            rc = child.wait(10)
        except ChildError:
            raise AssertionError(f"blocking {call}() not interrupted by Ctrl-C") from None
        child.close()  # and all it printed is read
        assert "KeyboardInterrupt" in child.stderr, child.stderr
        assert rc != 0
    finally:
        child.close()


def test_a_second_ctrl_c_ends_the_exit_linger():
    """Ctrl-C during a blocking send into a blackhole: the program ends,
    its exit lingering for the abandoned send (60 s here); a second Ctrl-C
    ends the linger at once and the process exits."""
    import signal
    import sys
    import textwrap

    child = Child([sys.executable, "-u", "-c", textwrap.dedent(CTRL_C_SCRIPTS["send"]).replace(
        ", linger=1.0", "")])  # fmt: skip
    try:
        assert child.readline(30, "BLOCKING") == "BLOCKING", child.describe()
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        time.sleep(1.0)  # the exit is lingering now
        assert child.alive, child.describe()
        t0 = time.monotonic()
        child.send_signal(signal.SIGINT)
        try:
            child.wait(5)
        except ChildError:
            raise AssertionError("the second Ctrl-C did not end the exit") from None
        assert time.monotonic() - t0 < 5
    finally:
        child.close()


def test_collecting_a_node_inside_the_future_lock_does_not_hang(node_factory):
    """A Node dropped in a reference cycle is closed by the garbage
    collector, which can run while this very thread is inside chirp's
    Future lock.  That close fails the node's pending Futures in the same
    thread (a request waiting for its reply: the lock is taken again) and
    must not wait for the pump (it may wait for that lock itself: a send
    failed by the close)."""
    import chirp._futures

    with node_factory(synchronous=False) as peer:
        node = node_factory.collectable(synchronous=True, timeout=5.0)
        node.cycle = node  # only the collector can free it
        request = node.request_async(addr(peer), b"never answered")
        send = node.send_async(addr(peer), b"never acknowledged")
        time.sleep(0.3)  # both delivered; the peer neither replies nor releases
        assert not request.done() and not send.done()
        del node
        with chirp._futures.FUTURE_LOCK:
            gc.collect()
        assert isinstance(request.exception(timeout=10), chirp.ClosedError)
        assert isinstance(send.exception(timeout=10), chirp.ClosedError)


def test_a_request_sent_while_closing_stays_for_its_reply(pair):
    """White box: close() is under way (closing set) when the pump learns
    that a request was sent.  The request must stay pending, since its
    reply may come in the same batch of events, rather than fail at once;
    whatever is still pending when the pump stops fails then, saying what
    it was waiting for."""
    a, _ = pair
    core = a._core
    token = 10**15  # far beyond the node's own tokens
    fut = chirp._futures.new_future()
    fut._plain, fut._token = False, token
    core.pending[token] = fut
    core.closing = True
    try:
        chirp._pump.succeed(core, token, 1)
        assert not fut.done()
        assert core.pending.get(token) is fut
    finally:
        core.closing = False
    send = chirp._futures.new_future()  # a send the core never finished
    core.pending[token + 1] = send
    a.close()
    with pytest.raises(chirp.ClosedError, match="before the reply arrived"):
        fut.result(timeout=5.0)
    with pytest.raises(chirp.ClosedError, match="before the send completed"):
        send.result(timeout=5.0)
