"""Raw sockets that speak (or refuse to speak) chirp's protocol by hand.

Every wait is bounded.  This module does not import chirp.
"""

from __future__ import annotations

import select
import socket
import threading
import time

from . import wire
from .net import LOCAL


class PeerClosed(ConnectionError):
    """The other side closed before we read what we expected."""


def connect(port: int, host: str = LOCAL, timeout: float = 5.0) -> socket.socket:
    """A TCP connection (TCP_NODELAY) to host:port."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def close_all(socks) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send, tolerating the node closing the connection under us."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def recv_exact(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    """Exactly n bytes within timeout seconds in total: TimeoutError if
    they do not come, PeerClosed if the connection ends first."""
    deadline = time.monotonic() + timeout
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"got {len(buf)} of {n} bytes within {timeout} s")
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise PeerClosed(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_header(sock: socket.socket, timeout: float = 5.0) -> wire.Header:
    """The next header off the wire, passing over capability frames (a
    chirp node writes one after its handshake; a libchirp peer ignores
    it, and so do the raw peers here)."""
    while True:
        h = wire.decode_header(recv_exact(sock, wire.HEADER_SIZE, timeout))
        if wire.decode_capability(h.identity, h.type) is None:
            return h


def read_message(sock: socket.socket, timeout: float = 5.0) -> tuple[wire.Header, bytes, bytes]:
    """One message off the wire (capability frames passed over): (its
    decoded header, header bytes, data)."""
    h = read_header(sock, timeout)
    header = recv_exact(sock, h.header_len, timeout) if h.header_len else b""
    data = recv_exact(sock, h.data_len, timeout) if h.data_len else b""
    return h, header, data


def is_closed_now(sock: socket.socket) -> bool:
    """True if the other side closed (EOF or reset); whatever is readable
    before that is read and dropped.  Never waits."""
    while True:
        r, _, _ = select.select([sock], [], [], 0)
        if not r:
            return False
        try:
            chunk = sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except ConnectionError:
            return True
        if not chunk:
            return True


def read_until_closed(
    sock: socket.socket, timeout: float, since: float | None = None
) -> tuple[bool, float, bytes]:
    """Read until the other side closes (EOF or reset), at most until
    timeout seconds after `since` (a monotonic time, default now).  Returns
    (closed, seconds since `since`, the bytes read meanwhile)."""
    t0 = time.monotonic() if since is None else since
    got = bytearray()
    while True:
        left = t0 + timeout - time.monotonic()
        if left <= 0:
            return False, time.monotonic() - t0, bytes(got)
        r, _, _ = select.select([sock], [], [], min(left, 0.1))
        if not r:
            continue
        try:
            chunk = sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            continue
        except ConnectionError:
            return True, time.monotonic() - t0, bytes(got)
        if not chunk:
            return True, time.monotonic() - t0, bytes(got)
        got += chunk


def wait_closed(sock: socket.socket, timeout: float) -> bool:
    """True once the other side closed sock (within timeout seconds);
    anything it sends first (a node's handshake) is read and dropped."""
    return read_until_closed(sock, timeout)[0]


class RawServer:
    """A listening socket for speaking chirp's protocol by hand to a node
    that connects to it."""

    def __init__(self, identity: bytes = b"R" * 16):
        self.identity = identity
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOCAL, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.address = (LOCAL, self.port)
        self.conns: list[socket.socket] = []

    def accept(self, timeout: float = 5.0) -> RawConn:
        self.sock.settimeout(timeout)
        c, _ = self.sock.accept()
        c.settimeout(timeout)
        self.conns.append(c)
        return RawConn(c)

    def handshake(self, conn: RawConn) -> tuple[int, bytes]:
        """Read the node's handshake, answer with ours; returns (port, identity)."""
        port, ident = wire.decode_handshake(conn.read_exact(wire.HANDSHAKE_SIZE))
        conn.sock.sendall(wire.handshake(self.port, self.identity))
        return port, ident

    def close(self) -> None:
        close_all(self.conns)
        close_all([self.sock])


class RawConn:
    """One accepted connection of a RawServer."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def read_exact(self, n: int, timeout: float = 5.0) -> bytes:
        return recv_exact(self.sock, n, timeout)

    def read_message(self, timeout: float = 5.0) -> tuple[wire.Header, bytes, bytes]:
        return read_message(self.sock, timeout)

    def send_ack(self, identity: bytes, serial: int = 1) -> None:
        self.sock.sendall(wire.ack(identity, serial))

    def wait_eof(self, timeout: float) -> float:
        """Seconds until the other side closed (recv returned b''); bytes
        before that are an AssertionError; TimeoutError if it stays open."""
        t0 = time.monotonic()
        self.sock.settimeout(timeout)
        b = self.sock.recv(65536)
        if b:
            raise AssertionError(f"expected EOF, got {len(b)} bytes: {b[:64]!r}")
        return time.monotonic() - t0


class Blackhole:
    """A listening socket that never accepts: connects succeed (the kernel
    completes them from the backlog) but nothing is ever answered."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOCAL, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.address = (LOCAL, self.port)

    def close(self) -> None:
        self.sock.close()


class SilentPeer:
    """Accepts connections, answers the chirp handshake, then reads and
    keeps everything (in .received): never sends an ACK, never closes."""

    def __init__(self, identity: bytes = b"S" * 16):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOCAL, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = (LOCAL, self.port)
        self.handshake = wire.handshake(self.port, identity)
        self.received = bytearray()
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:  # the accept timeout included
                continue
            c.settimeout(0.2)
            try:
                c.sendall(self.handshake)
            except OSError:
                pass
            self.conns.append(c)
            threading.Thread(target=self._drain, args=(c,), daemon=True).start()

    def _drain(self, c: socket.socket) -> None:
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

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        close_all(self.conns)
        self.sock.close()
