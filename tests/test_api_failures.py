"""Failures reach the caller as exceptions of clear types, promptly."""

import asyncio
import re
import sys
import textwrap
import time

import pytest
from support.child import run
from support.net import LOCAL, free_port
from support.nodes import addr, close_while_blocked, roundtrip

import chirp


def _elapsed(t0):
    return time.monotonic() - t0


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_send_to_closed_port_is_connection_error(node_factory, sync):
    node = node_factory(timeout=1.0, synchronous=sync)
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        node.send((LOCAL, port), b"nobody home")
    assert isinstance(info.value, chirp.ChirpConnectionError)
    assert isinstance(info.value, chirp.ChirpError)
    assert _elapsed(t0) < 2 * 1.0 + 3.0  # within the connect timeout


def test_send_async_to_closed_port_future_fails(node_factory):
    node = node_factory(timeout=1.0)
    fut = node.send_async((LOCAL, free_port()), b"x")
    with pytest.raises(ConnectionError):
        fut.result(timeout=10)
    assert isinstance(fut.exception(timeout=0), chirp.ChirpConnectionError)


def test_request_to_closed_port_fails(node_factory):
    node = node_factory(timeout=1.0)
    with pytest.raises(ConnectionError):
        node.request((LOCAL, free_port()), b"q", timeout=5.0)
    fut = node.request_async((LOCAL, free_port()), b"q")
    with pytest.raises(ConnectionError):
        fut.result(timeout=10)


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_send_to_blackhole_times_out(node_factory, blackhole, sync):
    """The server accepts (kernel backlog) and never answers, not even the
    handshake: the send fails with ChirpTimeoutError, not before the timeout
    and not after the connect timeout."""
    timeout = 0.5
    node = node_factory(timeout=timeout, synchronous=sync)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        node.send(blackhole.address, b"into the void")
    took = _elapsed(t0)
    assert isinstance(info.value, chirp.ChirpTimeoutError)
    assert took >= timeout * 0.9, f"timed out early: {took:.3f} s"
    assert took < min(2 * timeout, 60) + timeout + 3.0, took


def test_sync_send_without_ack_times_out(node_factory, silent_peer):
    """The peer completes the handshake and reads the message but never
    acknowledges: a synchronous send fails after ``timeout``."""
    timeout = 0.6
    node = node_factory(timeout=timeout, synchronous=True)
    t0 = time.monotonic()
    with pytest.raises(chirp.ChirpTimeoutError):
        node.send(silent_peer.address, b"ack me")
    took = _elapsed(t0)
    assert took >= timeout * 0.9, took
    assert took < timeout + 4.0, took
    assert b"ack me" in bytes(silent_peer.received)


def test_async_send_without_ack_succeeds(node_factory, silent_peer):
    """Asynchronous: success means handed to the kernel, no ACK needed."""
    node = node_factory(timeout=0.6, synchronous=False)
    node.send(silent_peer.address, b"fire and forget")
    deadline = time.monotonic() + 5
    while b"fire and forget" not in bytes(silent_peer.received):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_request_timeout(node_factory, silent_peer):
    """A request whose answer never comes fails with a TimeoutError."""
    node = node_factory(timeout=5.0, synchronous=False)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        node.request(silent_peer.address, b"anyone?", timeout=0.5)
    assert _elapsed(t0) < 5.0


def _request_every_way(node, timeout):
    """request(), request_async() and arequest() with this timeout."""
    return (
        lambda: node.request(("127.0.0.1", 1), b"x", timeout=timeout),
        lambda: node.request_async(("127.0.0.1", 1), b"x", timeout=timeout),
        lambda: asyncio.run(node.arequest(("127.0.0.1", 1), b"x", timeout=timeout)),
    )


@pytest.mark.parametrize(
    "bad, error, text",
    [
        ("5", TypeError, "timeout must be a number or None, got str"),
        (b"5", TypeError, "timeout must be a number or None, got bytes"),
        ([5], TypeError, "timeout must be a number or None, got list"),
        (True, TypeError, "timeout must be a number or None, got bool"),
        (0, ValueError, "timeout must be > 0 for a request, got 0"),
        (0.0, ValueError, "timeout must be > 0 for a request, got 0"),
        (-1, ValueError, "timeout must be >= 0, got -1"),
    ],
)
def test_request_timeouts_are_checked_alike(node_factory, bad, error, text):
    """The three ways to request check the timeout alike, naming what was
    wrong, before anything is sent."""
    node = node_factory(synchronous=False)
    for call in _request_every_way(node, bad):
        with pytest.raises(error, match=re.escape(text)):
            call()
    assert node.stats()["messages_sent"] == 0


def test_recv_checks_the_timeout_when_the_inbox_holds_messages(pair):
    """recv() hands out what a batch left in the inbox without a C call,
    for an int timeout as for a float; a bad one is still refused there,
    naming what was wrong, and loses nothing."""
    a, b = pair
    sent = [b"i%d" % i for i in range(200)]
    for f in [a.send_async(addr(b), d) for d in sent]:
        f.result(timeout=10)
    got = [m.data for m in b.recv_many(1, timeout=10)]
    assert b._core.inbox, "one batch should have brought more than one"
    for bad, error, text in (
        (True, TypeError, "timeout must be a number or None, got bool"),
        (-1, ValueError, "timeout must be >= 0, got -1"),
        (-0.5, ValueError, "timeout must be >= 0, got -0.5"),
        ("5", TypeError, "timeout must be a number or None, got str"),
    ):
        with pytest.raises(error, match=re.escape(text)):
            b.recv(timeout=bad)
    while len(got) < len(sent):
        got.append(b.recv(timeout=5).data)
    assert got == sent


def test_recv_timeout(node_factory):
    node = node_factory()
    for wait in (0.2, 0.01):
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            node.recv(timeout=wait)
        took = _elapsed(t0)
        assert took >= wait * 0.8, took
        assert took < wait + 2.0, took


def test_recv_timeout_zero_polls(node_factory):
    node = node_factory()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        node.recv(timeout=0)
    assert _elapsed(t0) < 1.0


def test_closed_node_raises_closed_error(node_factory):
    node = node_factory()
    other = node_factory()
    node.close()
    with pytest.raises(chirp.ClosedError):
        node.send(addr(other), b"x")
    with pytest.raises(chirp.ClosedError):
        node.recv(timeout=0.1)
    with pytest.raises(chirp.ClosedError):
        node.request(addr(other), b"x", timeout=1.0)
    # the async variants may raise at once or return a failed future
    for call in (
        lambda: node.send_async(addr(other), b"x"),
        lambda: node.request_async(addr(other), b"x"),
    ):
        try:
            fut = call()
        except chirp.ClosedError:
            continue
        with pytest.raises(chirp.ClosedError):
            fut.result(timeout=5)


def test_reply_on_closed_node(node_factory):
    rx = node_factory()
    tx = node_factory()
    msg = roundtrip(tx, rx, b"hello")
    rx.close()
    with pytest.raises(chirp.ClosedError):
        rx.reply(msg, b"too late")


def test_release_after_close_is_harmless(node_factory):
    rx = node_factory(auto_release=False)
    tx = node_factory()
    fut = tx.send_async(addr(rx), b"held")
    msg = rx.recv(timeout=5)
    rx.close()
    msg.release()  # must not raise or crash
    msg.release()
    with pytest.raises(chirp.ChirpError):
        fut.result(timeout=10)  # never acknowledged


def test_close_is_idempotent(node_factory):
    node = node_factory()
    node.close()
    node.close()
    with node:  # a with block on a closed node exits cleanly
        pass
    node.close()


def test_with_block_closes(node_factory):
    with node_factory() as node:
        port = node.port
    with pytest.raises(chirp.ClosedError):
        node.recv(timeout=0.1)
    # and the port is free again
    again = node_factory(port=port)
    assert again.port == port


@pytest.mark.parametrize("linger", [0, 1.0])
def test_close_fails_pending_send_promptly(node_factory, blackhole, linger):
    """A send that cannot complete fails once the linger is over (linger 0:
    at once), not after the send timeout."""
    node = node_factory(timeout=30.0)
    box, took = close_while_blocked(node, node.send, blackhole.address, b"pending", linger=linger)
    assert took < linger + 1.0, f"close() took {took:.2f} s"
    assert isinstance(box.get("error"), chirp.ClosedError), box


def test_close_fails_pending_futures_promptly(node_factory, blackhole, silent_peer):
    node = node_factory(timeout=30.0)
    futs = [node.send_async(blackhole.address, b"a%d" % i) for i in range(5)]
    futs += [node.send_async(silent_peer.address, b"b%d" % i) for i in range(5)]
    futs.append(node.request_async(silent_peer.address, b"q"))
    time.sleep(0.3)
    node.close()
    for f in futs:
        exc = f.exception(timeout=5.0)
        assert isinstance(exc, chirp.ChirpError), exc


def test_close_wakes_blocked_recv(node_factory):
    node = node_factory()
    box, _ = close_while_blocked(node, node.recv, timeout=30.0)
    assert isinstance(box.get("error"), chirp.ClosedError), box


def test_oversized_send_rejected_locally(node_factory):
    tx = node_factory(max_msg_size=1024)
    rx = node_factory()
    with pytest.raises((ValueError, chirp.ChirpError)):
        tx.send(addr(rx), b"x" * 2000)


def test_header_too_long_rejected(node_factory):
    tx = node_factory()
    rx = node_factory()
    with pytest.raises((ValueError, chirp.ChirpError)):
        tx.send(addr(rx), b"", header=b"h" * 65536)


def test_receiver_with_smaller_max_msg_size(node_factory):
    """The receiver treats a too-big message as a protocol error and closes
    the connection; the synchronous sender gets an error, not a hang, and
    both nodes go on working."""
    rx = node_factory(max_msg_size=1024)
    tx = node_factory(timeout=3.0, synchronous=True)
    t0 = time.monotonic()
    with pytest.raises(chirp.ChirpError):
        tx.send(addr(rx), b"y" * 5000)
    assert _elapsed(t0) < 3.0 + 4.0
    with pytest.raises(TimeoutError):
        rx.recv(timeout=0.2)
    msg = roundtrip(tx, rx, b"small enough")
    assert msg.data == b"small enough"


@pytest.mark.parametrize(
    "address",
    [
        ("127.0.0.1", 70000),
        ("127.0.0.1", -1),
        ("127.0.0.1", "2998"),
        ("127.0.0.1",),
        "127.0.0.1:2998",
        (None, 2998),
    ],
)
def test_bad_address_rejected(node_factory, address):
    node = node_factory(timeout=1.0)
    with pytest.raises((ValueError, TypeError)):
        node.send(address, b"x")


def test_unresolvable_name_fails_cleanly(node_factory):
    """Not an IP address: rejected, or (if names are resolved) a connection
    error -- never a hang or a crash."""
    node = node_factory(timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises((ValueError, chirp.ChirpConnectionError)):
        node.send(("no such host.invalid", 2998), b"x")
    assert _elapsed(t0) < 2 * 1.0 + 10.0


def test_bad_payload_type_rejected(node_factory):
    node = node_factory()
    other = node_factory()
    with pytest.raises(TypeError):
        node.send(addr(other), "text, not bytes")
    with pytest.raises(TypeError):
        node.send(addr(other), b"x", header="text")


# ----------------------------------------------------- process lifecycle


def _run_script(code, timeout=40):
    """Run Python code in a child process to its end (ChildError, with its
    output so far, if it hangs)."""
    return run([sys.executable, "-c", textwrap.dedent(code)], timeout=timeout)


def test_garbage_collected_node_does_not_hang():
    res = _run_script("""
        import gc, chirp
        for i in range(5):
            a = chirp.Node(port=0, disable_encryption=True, timeout=2.0)
            b = chirp.Node(port=0, disable_encryption=True, timeout=2.0)
            f = b.send_async(("127.0.0.1", a.port), b"x")
            m = a.recv(timeout=5)
            f.result(timeout=5)
            del a, b, f          # message m still referenced
            gc.collect()
            m.release()
            del m
            gc.collect()
        print("OK")
    """)
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout


def test_unreleased_message_and_gc():
    res = _run_script("""
        import gc, chirp
        a = chirp.Node(port=0, disable_encryption=True, auto_release=False)
        b = chirp.Node(port=0, disable_encryption=True, synchronous=False)
        b.send(("127.0.0.1", a.port), b"held")
        m = a.recv(timeout=5)
        del a
        gc.collect()
        assert m.data == b"held"
        del m
        gc.collect()
        b.close()
        print("OK")
    """)
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout


def test_node_alive_at_exit_does_not_hang(blackhole):
    res = _run_script(
        """
        import chirp
        a = chirp.Node(port=0, disable_encryption=True, timeout=30.0)
        b = chirp.Node(port=0, disable_encryption=True, auto_release=False)
        f = a.send_async(("127.0.0.1", b.port), b"unreleased")
        m = b.recv(timeout=5)
        g = a.send_async(("127.0.0.1", PORT), b"to a blackhole")
        print("EXITING", flush=True)
    """.replace("PORT", str(blackhole.port))
    )
    assert res.returncode == 0, res.stderr
    assert "EXITING" in res.stdout


def test_blocked_recv_thread_at_exit_does_not_hang():
    res = _run_script("""
        import threading, chirp
        a = chirp.Node(port=0, disable_encryption=True)
        t = threading.Thread(target=lambda: a.recv(timeout=60), daemon=True)
        t.start()
        print("EXITING", flush=True)
    """)
    assert "EXITING" in res.stdout
    assert res.returncode == 0, res.stderr


def test_sigterm_like_exit_with_open_node_does_not_hang():
    """sys.exit() from inside a with block and a second node never closed."""
    res = _run_script("""
        import sys, chirp
        keep = chirp.Node(port=0, disable_encryption=True)
        with chirp.Node(port=0, disable_encryption=True) as n:
            sys.exit(7)
    """)
    assert res.returncode == 7, res.stderr


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_max_msg_size_boundary_between_nodes(node_factory, sync):
    """header + data == max_msg_size is sent and received; one byte more is
    refused by the sender, which stays usable."""
    limit = 4096
    tx = node_factory(max_msg_size=limit, synchronous=sync)
    rx = node_factory(max_msg_size=limit)
    hdr = b"h" * 96
    msg = roundtrip(tx, rx, b"d" * (limit - len(hdr)), header=hdr)
    assert len(msg.data) + len(msg.header) == limit
    with pytest.raises((ValueError, chirp.ChirpError)):
        tx.send(addr(rx), b"d" * (limit - len(hdr) + 1), header=hdr)
    assert roundtrip(tx, rx, b"still fine").data == b"still fine"
