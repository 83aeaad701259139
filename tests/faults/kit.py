"""Helpers of the fault-injection tests (tests/faults): a ledger of
numbered synchronous sends, a drainer, the consumer process, a TCP proxy
that breaks connections on purpose, and the kernel's view of connections.

Everything that waits has a bound; everything that starts a process,
thread or socket has a close()/stop() that the fixtures in
tests/faults/conftest.py call in a finalizer.
"""

from __future__ import annotations

import os
import random
import select
import signal
import socket
import struct
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from support.child import Child, ChildError, python
from support.net import LOCAL

# -- a numbered stream of synchronous sends -----------------------------------


class SendLedger:
    """Sends numbered messages with send_async and keeps, per number, the
    future; a window bounds how many are outstanding at once."""

    def __init__(self, node, address, window=16, pad=0):
        self.node = node
        self.address = address
        self.window = threading.BoundedSemaphore(window)
        self.pad = pad
        self.futures: dict[int, Future] = {}
        self.next = 0
        self.lock = threading.Lock()
        self.last_failed = False
        self.n_acked = 0
        self.n_failed = 0

    def payload(self, n: int) -> bytes:
        b = b"%d" % n
        if self.pad > len(b):
            b = b + b"." * (self.pad - len(b))
        return b

    def send_one(self, acquire_timeout=10.0) -> Future | None:
        if not self.window.acquire(timeout=acquire_timeout):
            raise AssertionError("send window never freed: a send got no completion")
        with self.lock:
            n = self.next
            self.next += 1
        try:
            fut = self.node.send_async(self.address, self.payload(n))
        except BaseException:
            self.window.release()
            raise
        with self.lock:
            self.futures[n] = fut

        def done(f, self=self):
            failed = f.exception() is not None
            with self.lock:
                if failed:
                    self.n_failed += 1
                else:
                    self.n_acked += 1
            self.last_failed = failed
            self.window.release()

        fut.add_done_callback(done)
        return fut

    def pending(self):
        with self.lock:
            items = list(self.futures.items())
        return [n for n, f in items if not f.done()]

    def split(self):
        """(acked numbers, {number: exception}) over done futures."""
        acked, failed = set(), {}
        with self.lock:
            items = list(self.futures.items())
        for n, f in items:
            if not f.done():
                continue
            e = f.exception(timeout=0)
            if e is None:
                acked.add(n)
            else:
                failed[n] = e
        return acked, failed


def parse_numbers(raw: bytes) -> list[int]:
    """Numbers of a consumer log: one per line; a torn last line is ignored."""
    out = []
    for line in raw.split(b"\n"):
        line = line.split(b".", 1)[0]
        if line.isdigit():
            out.append(int(line))
    return out


# -- the consumer process -----------------------------------------------------


class Drainer:
    """Drains a node in a thread: the numbers of every message (got) and
    the ports they came from (sources); releases each message (a no-op on
    an auto-release node)."""

    def __init__(self, node):
        self.node = node
        self.got: list[int] = []
        self.sources: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                msgs = self.node.recv_many(64, timeout=0.1)
            except TimeoutError:
                continue
            except Exception:
                return  # the node closed
            for m in msgs:
                self.sources.add(m.port)
                self.got.extend(parse_numbers(m.data))
                m.release()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


class ConsumerProcess:
    """python -m faults.fault_consumer in a child process: an asynchronous
    node (auto_release=False) that appends each message's data to a log
    file before it releases the message.  Restartable on the same port."""

    def __init__(self, log_path, port=0, extra=(), start_timeout=15.0):
        self.log_path = log_path
        self.port = port
        self.extra = list(extra)
        self.start_timeout = start_timeout
        self.child: Child | None = None
        self.starts = 0
        self.kills = 0
        self.stopped = False

    def start(self):
        assert self.child is None or not self.child.alive
        deadline = time.monotonic() + self.start_timeout
        while True:
            argv = python("faults.fault_consumer", "--port", self.port, "--log", self.log_path)
            child = Child([*argv, *self.extra], name="consumer")
            try:
                words = child.readline(max(0.0, deadline - time.monotonic()), "READY").split()
            except ChildError as e:
                words = [str(e)]
            if words[0] == "READY":
                self.child = child
                self.port = int(words[1])
                self.starts += 1
                return self
            # Could not listen (e.g. the port is briefly unavailable): retry.
            child.close(grace=0)
            if time.monotonic() >= deadline:
                raise AssertionError(f"consumer did not start: {' '.join(words)}\n{child.stderr}")
            time.sleep(0.1)

    def kill(self):
        """SIGKILL, and wait until it is gone."""
        if self.stopped:
            self.cont()
        self.kills += 1
        self.child.kill()

    def sigstop(self):
        self.child.send_signal(signal.SIGSTOP)
        self.stopped = True

    def cont(self):
        if self.child is not None:
            self.child.send_signal(signal.SIGCONT)
        self.stopped = False

    def numbers(self) -> list[int]:
        try:
            with open(self.log_path, "rb") as f:
                return parse_numbers(f.read())
        except FileNotFoundError:
            return []

    def stop(self):
        if self.child is not None:
            if self.stopped:
                self.cont()
            self.child.close(grace=0)
            self.child = None


# -- a TCP proxy that breaks connections on purpose ---------------------------


@dataclass
class Fault:
    """What to do to one proxied connection: once `offset` bytes went
    `direction` ("up": sender -> consumer, "down": consumer -> sender),
    `action` it: "close" (FIN both ways), "reset" (RST both ways) or
    "stall" (stop forwarding anything, keep both sockets open)."""

    direction: str
    offset: int
    action: str
    label: str = ""
    fired: threading.Event = field(default_factory=threading.Event)
    fired_at: float = 0.0


class FaultProxy:
    """Listens on 127.0.0.1:port and relays every accepted connection to
    upstream.  plans[i] is the Fault for the i-th accepted connection (None
    or missing: relay cleanly)."""

    def __init__(self, upstream_port, plans=()):
        self.upstream = (LOCAL, upstream_port)
        self.plans = list(plans)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOCAL, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.address = (LOCAL, self.port)
        self.accepted = 0
        self.bytes = []  # per connection: [up, down]
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        t = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                u = socket.create_connection(self.upstream, timeout=2.0)
            except OSError:
                c.close()
                continue
            with self._lock:
                idx = self.accepted
                self.accepted += 1
                self.bytes.append([0, 0])
                self._socks += [c, u]
            fault = self.plans[idx] if idx < len(self.plans) else None
            t = threading.Thread(
                target=self._relay, args=(idx, c, u, fault), name=f"fault-relay-{idx}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def _relay(self, idx, client, upstream, fault):
        for s in (client, upstream):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = {client: upstream, upstream: client}
        dirn = {client: 0, upstream: 1}  # 0 = up, 1 = down
        names = ("up", "down")
        open_ = {client, upstream}
        counts = self.bytes[idx]
        try:
            while not self._stop.is_set() and open_:
                r, _, _ = select.select(list(open_), [], [], 0.1)
                for s in r:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    d = dirn[s]
                    if not data:
                        # Pass the half-close on, then stop reading this side.
                        open_.discard(s)
                        try:
                            peer[s].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    cut = None
                    if (
                        fault is not None
                        and not fault.fired.is_set()
                        and names[d] == fault.direction
                    ):
                        if counts[d] + len(data) >= fault.offset:
                            cut = fault.offset - counts[d]
                            data = data[:cut]
                    if data:
                        _sendall(peer[s], data, self._stop)
                        counts[d] += len(data)
                    if cut is not None:
                        fault.fired_at = time.monotonic()
                        fault.fired.set()
                        self._act(fault, client, upstream)
                        return
                if not open_:
                    break
        finally:
            if fault is None or fault.action != "stall" or not fault.fired.is_set():
                _close(client)
                _close(upstream)

    def _act(self, fault, client, upstream):
        if fault.action == "close":
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                _close(s)
        elif fault.action == "reset":
            for s in (client, upstream):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                _close(s)
        elif fault.action == "stall":
            # Keep both sockets open, forward nothing; close() ends it.
            self._stop.wait()
        else:
            raise ValueError(fault.action)

    def close(self):
        self._stop.set()
        _close(self.sock)
        for t in self._threads:
            t.join(timeout=5)
        with self._lock:
            for s in self._socks:
                _close(s)


def _sendall(sock, data, stop):
    view = memoryview(data)
    while view and not stop.is_set():
        try:
            n = sock.send(view)
            view = view[n:]
        except BlockingIOError:
            select.select([], [sock], [], 0.1)
        except OSError:
            return


def _close(s):
    try:
        s.close()
    except OSError:
        pass


# -- connections as the kernel sees them ------------------------------------------


def established_to(ports) -> list[tuple[int, int]]:
    """ESTABLISHED IPv4/IPv6 TCP sockets whose *local* port is one of ports
    and whose remote is loopback: (local_port, remote_port) pairs.  For
    nodes that listen on `ports`, these are the accepted ends, i.e. one
    entry per connection to any of them."""
    ports = set(ports)
    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 4 or parts[3] != "01":
                continue
            lp = int(parts[1].rsplit(":", 1)[1], 16)
            rp = int(parts[2].rsplit(":", 1)[1], 16)
            if lp in ports:
                out.append((lp, rp))
    return out


def connections_between(port_a, port_b) -> int:
    """Established connections between two nodes (in this process) that
    listen on port_a and port_b: each connection has exactly one accepted
    end, whose local port is the listening port of the accepting node."""
    return len(established_to([port_a, port_b]))


def rng_for(name: str) -> random.Random:
    """A Random seeded from CHIRP_FAULT_SEED (if set) or the clock; prints the
    seed so a failure can be replayed."""
    seed = os.environ.get("CHIRP_FAULT_SEED")
    seed = int(seed) if seed else int(time.time() * 1000) % 1_000_000
    print(f"[{name}] seed={seed} (replay with CHIRP_FAULT_SEED={seed})")
    return random.Random(seed)
