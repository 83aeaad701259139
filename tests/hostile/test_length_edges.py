"""Lengths at the edge of max_msg_size, through a live node: exactly
max_msg_size (header + data) is delivered, one byte more closes the
connection with nothing delivered, and lengths that overflow 32 bits close
it too; the node keeps serving."""

import os

import pytest
from support import wire
from support.net import LOCAL
from support.raw import connect, recv_exact, wait_closed

pytestmark = pytest.mark.hang_limit(90)

MAX = 4096


def assert_nothing_delivered(node, wait=0.3):
    with pytest.raises(TimeoutError):
        m = node.recv(timeout=wait)
        raise AssertionError(f"unexpected message {m!r}")


def assert_serves(node, peer):
    fut = peer.send_async((LOCAL, node.port), b"still here", header=b"h")
    m = node.recv(timeout=5)
    assert (m.data, m.header, m.remote_identity) == (b"still here", b"h", peer.identity)
    fut.result(timeout=5)


@pytest.fixture
def node(node_factory):
    return node_factory(max_msg_size=MAX, synchronous=False, timeout=5.0)


def exchange_handshake(node, port):
    s = connect(node.port)
    s.sendall(wire.handshake(port))
    got = recv_exact(s, 18)  # the node's own handshake
    assert int.from_bytes(got[:2], "big") == node.port
    assert got[2:] == node.identity
    return s


@pytest.mark.parametrize("header_len", [0, 1, 100, MAX - 1, MAX])
def test_exactly_max_msg_size_is_delivered(node, good_peer, sockets, header_len):
    data_len = MAX - header_len
    hdr, data = os.urandom(header_len), os.urandom(data_len)
    s = exchange_handshake(node, 10100)
    sockets.append(s)
    s.sendall(wire.header(None, 7, data_len, header_len) + hdr + data)
    m = node.recv(timeout=5)
    assert (m.header, m.data, m.port, m.serial) == (hdr, data, 10100, 7)
    # the connection lives on: another message right after
    s.sendall(wire.header(None, 8, 3, 0) + b"abc")
    assert node.recv(timeout=5).data == b"abc"
    assert_serves(node, good_peer)


@pytest.mark.parametrize("header_len", [0, 1, 100, MAX, MAX + 1])
def test_one_byte_over_closes(node, good_peer, sockets, header_len):
    data_len = MAX + 1 - header_len
    s = exchange_handshake(node, 10101)
    sockets.append(s)
    # the announced bytes follow in full, so only the length check can refuse
    try:
        s.sendall(wire.header(None, 1, data_len, header_len) + os.urandom(MAX + 1))
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert wait_closed(s, 5.0), "node kept a connection announcing max_msg_size + 1"
    assert_nothing_delivered(node)
    assert_serves(node, good_peer)


def test_header_only_over_max_closes(node_factory, good_peer, sockets):
    """max_msg_size below 64 KiB: a header_len alone can exceed it."""
    node = node_factory(max_msg_size=1024, synchronous=False)
    s = exchange_handshake(node, 10102)
    sockets.append(s)
    try:
        s.sendall(wire.header(None, 1, 0, 1025) + b"h" * 1025)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert wait_closed(s, 5.0)
    assert_nothing_delivered(node)
    assert_serves(node, good_peer)


@pytest.mark.parametrize(
    "data_len,header_len",
    [
        (0xFFFFFFFF, 0xFFFF),  # the sum needs 33 bits
        (0xFFFFFFFF, 0),
        (0, 0xFFFF),
        (0x100000000 - 0xFFFF + MAX, 0xFFFF),  # wraps to exactly MAX in uint32
        (0x100000000 - 1, 1 + MAX),  # wraps to MAX in uint32
    ],
)
def test_overflowing_lengths_close(node, good_peer, sockets, data_len, header_len):
    s = exchange_handshake(node, 10103)
    sockets.append(s)
    try:
        # enough bytes that a wrapped length would "complete" a message
        s.sendall(wire.header(None, 1, data_len, header_len) + b"x" * (MAX + 64))
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert wait_closed(s, 5.0)
    assert_nothing_delivered(node)
    assert_serves(node, good_peer)


def test_edge_sizes_with_max_above_header_range(node_factory, good_peer, sockets):
    """max_msg_size 70000 > 0xFFFF: a full 65535-byte header plus the rest as
    data is delivered; one more data byte is refused."""
    limit = 70000
    node = node_factory(max_msg_size=limit, synchronous=False)
    s = exchange_handshake(node, 10104)
    sockets.append(s)
    hdr, data = os.urandom(0xFFFF), os.urandom(limit - 0xFFFF)
    s.sendall(wire.header(None, 1, len(data), len(hdr)) + hdr + data)
    m = node.recv(timeout=5)
    assert m.header == hdr and m.data == data
    try:
        s.sendall(wire.header(None, 1, len(data) + 1, len(hdr)) + hdr + data + b"!")
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert wait_closed(s, 5.0)
    assert_nothing_delivered(node)
    assert_serves(node, good_peer)
