"""Helpers for the hostile-peer tests: raw wire frames, raw sockets, a node
hosted in a child process (so its RSS can be read), and good-peer checks.

Wire format (DESIGN.md section 1, big-endian):
  handshake  = uint16 listening port, 16-byte identity               (18 bytes)
  msg header = 16-byte identity, uint32 serial, uint32 data_len,
               uint16 header_len, uint8 type                         (27 bytes)
"""

from __future__ import annotations

import json
import os
import queue
import resource
import select
import socket
import struct
import subprocess
import sys
import threading
import time

LOCAL = "127.0.0.1"
REQ_ACK, ACK, NOOP = 1, 2, 4
HS = struct.Struct(">H16s")
HDR = struct.Struct(">16sIIHB")
assert HS.size == 18 and HDR.size == 27

HERE = os.path.dirname(os.path.abspath(__file__))
HOST_SCRIPT = os.path.join(HERE, "node_host.py")

# Fake listening ports claimed by raw peers in their handshakes: below the
# ephemeral range, so they never equal the port of a real test node.
FAKE_PORT_BASE = 10000


def handshake(port: int, identity: bytes | None = None) -> bytes:
    return HS.pack(port, identity if identity is not None else os.urandom(16))


def header(
    data_len: int, header_len: int, mtype: int = 0, serial: int = 1, identity: bytes | None = None
) -> bytes:
    ident = identity if identity is not None else os.urandom(16)
    return HDR.pack(ident, serial, data_len, header_len, mtype)


def frame(data: bytes, hdr: bytes = b"", mtype: int = 0, serial: int = 1) -> bytes:
    return header(len(data), len(hdr), mtype, serial) + hdr + data


def raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def raw_connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection((LOCAL, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def close_all(socks) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def is_closed_now(sock: socket.socket) -> bool:
    """True if the peer closed (EOF or reset), draining whatever is readable."""
    while True:
        r, _, _ = select.select([sock], [], [], 0)
        if not r:
            return False
        try:
            chunk = sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not chunk:
            return True


def wait_closed(sock: socket.socket, timeout: float) -> bool:
    """Wait up to timeout for the node to close sock (EOF or reset);
    anything the node sends first (its handshake) is read and dropped."""
    deadline = time.monotonic() + timeout
    while True:
        if is_closed_now(sock):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        select.select([sock], [], [], min(left, 0.05))


def recv_exact(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(buf)} of {n} bytes within {timeout} s")
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class NodeHost:
    """A chirp node in a child process (tests/hostile/node_host.py).

    stdout: "READY <port> <pid>" once up, then one line per command.
    stdin commands: count, held, release, drain, rss, heap, last, quit
    (see node_host.py).
    Messages with header b"echo" are answered with their data; all others
    are counted (and held while auto_release is False).
    """

    def __init__(self, **options) -> None:
        self.options = options
        self.proc = subprocess.Popen(
            [sys.executable, HOST_SCRIPT, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        try:
            line = self._line(30.0)
            parts = line.split()
            assert parts[0] == "READY", f"node host said {line!r}"
            self.port = int(parts[1])
            self.pid = int(parts[2])
        except BaseException:
            self.close()
            raise
        self.lock = threading.Lock()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node host silent for {timeout} s") from None
        if line is None:
            raise AssertionError(f"node host exited (rc={self.proc.poll()})")
        return line

    @property
    def addr(self) -> tuple[str, int]:
        return (LOCAL, self.port)

    def cmd(self, command: str, timeout: float = 10.0) -> str:
        """Send a command line; return the reply's value (after the keyword)."""
        with self.lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            line = self._line(timeout)
        word, _, rest = line.partition(" ")
        assert word == command.upper(), f"{command!r} answered {line!r}"
        return rest

    def count(self) -> int:
        return int(self.cmd("count"))

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        p = self.proc
        if p.poll() is None:
            try:
                assert p.stdin is not None
                p.stdin.write("quit\n")
                p.stdin.flush()
            except (OSError, ValueError):
                pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        for f in (p.stdin, p.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


def echo_roundtrip(peer, addr, timeout: float = 5.0, size: int = 100) -> float:
    """A request/reply through the node at addr; returns the seconds it took."""
    data = os.urandom(size)
    t0 = time.monotonic()
    reply = peer.request(addr, data, header=b"echo", timeout=timeout)
    took = time.monotonic() - t0
    assert reply.data == data
    return took
