"""Helpers of the hostile-peer tests: a node hosted in a child process
(so that its memory can be read), and the checks that a good peer is
still served.  The wire format and raw sockets are support.wire and
support.raw.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time

from support.child import Child, python
from support.net import LOCAL

# Fake listening ports claimed by raw peers in their handshakes: below the
# ephemeral range, so they never equal the port of a real test node.
FAKE_PORT_BASE = 10000


def raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class NodeHost(Child):
    """A chirp node in a child process (python -m hostile.node_host).

    stdout: "READY <port> <pid>" once up, then one line per command.
    stdin commands: count, held, release, drain, rss, heap, last, quit
    (see node_host.py).
    Messages with header b"echo" are answered with their data; all others
    are counted (and held while auto_release is False).
    """

    def __init__(self, **options) -> None:
        super().__init__(
            python("hostile.node_host", json.dumps(options)),
            name="node host",
            stdin=True,
            stderr="inherit",
        )
        self.options = options
        self.lock = threading.Lock()
        try:
            port, pid = self.expect_line("READY", 30.0)
            assert int(pid) == self.pid, f"READY {port} {pid} from pid {self.pid}"
            self.port = int(port)
        except BaseException:
            self.close()
            raise

    @property
    def addr(self) -> tuple[str, int]:
        return (LOCAL, self.port)

    def cmd(self, command: str, timeout: float = 10.0) -> str:
        """Send a command line; return the reply's value (after the keyword)."""
        with self.lock:
            self.write_line(command)
            line = self.readline(timeout, f"an answer to {command!r}")
        word, _, rest = line.partition(" ")
        assert word == command.upper(), f"{command!r} answered {line!r}"
        return rest

    def count(self) -> int:
        return int(self.cmd("count"))

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def close(self, grace: float = 10.0, sig=None) -> int | None:
        """ "quit", up to grace seconds to exit, then SIGKILL."""
        if self.alive and self.proc.stdin is not None:
            try:
                self.write_line("quit")
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=grace)
            except Exception:
                pass
        return super().close(grace=0)


def echo_roundtrip(peer, addr, timeout: float = 5.0, size: int = 100) -> float:
    """A request/reply through the node at addr; returns the seconds it took."""
    data = os.urandom(size)
    t0 = time.monotonic()
    reply = peer.request(addr, data, header=b"echo", timeout=timeout)
    took = time.monotonic() - t0
    assert reply.data == data
    return took
