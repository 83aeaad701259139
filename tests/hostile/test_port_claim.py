"""A handshake's port is a claim nothing checks: a second local process
that announces the listening port of a requester, while the requester's
connection is open, must not receive the answer meant for it."""

from __future__ import annotations

import socket
import time

from support import wire
from support.raw import connect, recv_exact

PORT = 40123  # the requester's listening port, as its handshake announces


def _hello(node_port: int, identity: bytes) -> socket.socket:
    s = connect(node_port)
    s.sendall(wire.handshake(PORT, identity))
    recv_exact(s, wire.HANDSHAKE_SIZE)  # the node's handshake
    return s


def _read_all(s: socket.socket, quiet: float = 0.5) -> bytes:
    got = b""
    s.settimeout(quiet)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return got
            got += b
    except TimeoutError:
        return got


def test_a_second_claim_of_a_port_does_not_take_the_reply(node_factory):
    node = node_factory(synchronous=False, auto_release=False)
    requester = _hello(node.port, b"R" * 16)
    request_id = b"Q" * 16
    requester.sendall(wire.message(request_id, 1, b"question"))
    msg = node.recv(timeout=5.0)
    assert msg.port == PORT and msg.data == b"question"
    spoof = _hello(node.port, b"S" * 16)  # another process, the same claim
    time.sleep(0.3)  # its handshake is done at the node
    node.reply_async(msg, b"answer").result(timeout=5.0)
    msg.release()
    _, to_requester = wire.parse_stream(b"\0" * wire.HANDSHAKE_SIZE + _read_all(requester))
    _, to_spoof = wire.parse_stream(b"\0" * wire.HANDSHAKE_SIZE + _read_all(spoof))
    assert [m["data"] for m in to_spoof] == [], "the second claim got the reply"
    answers = [m for m in to_requester if m["data"] == b"answer"]
    assert len(answers) == 1 and answers[0]["identity"] == request_id, to_requester
    requester.close()
    spoof.close()


def test_the_claim_is_honoured_once_the_first_connection_is_gone(node_factory):
    """A requester that restarted (its old connection closed) gets what is
    sent to its port on its new connection."""
    node = node_factory(synchronous=False)
    old = _hello(node.port, b"R" * 16)
    old.close()
    time.sleep(0.3)  # the node sees the close
    new = _hello(node.port, b"N" * 16)
    time.sleep(0.2)
    node.send(("127.0.0.1", PORT), b"to the new one")
    _, got = wire.parse_stream(b"\0" * wire.HANDSHAKE_SIZE + _read_all(new))
    assert [m["data"] for m in got] == [b"to the new one"]
    new.close()
