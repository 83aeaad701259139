"""The C glue: a node's native bridge, the calls that cross into it, and
the pump thread that turns completions and replies into Future results.

The node's libuv loop runs on a native thread started by C; Python only
queues commands (one lock and one wake-up per batch) and drains events
with the GIL released while it waits.  Nothing here is public: Node
(node.py) is the face of it.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
import weakref
from collections import deque
from typing import Any

from . import _futures, _pump
from ._addresses import Address, AddressBook
from ._chirp import ffi, lib
from ._futures import ChirpFuture
from ._lifecycle import LIVE, Uncached
from ._limits import BATCH, SLICE_MS
from ._observe import Observer
from ._receive import COPY_BUF, Receiver, slice_ms
from .config import Config, to_c
from .errors import (
    ChirpTimeoutError,
    ClosedError,
    MessageSizeError,
    error_from,
)
from .message import Message, as_bytes

Buffer = bytes | bytearray | memoryview

_DETAIL = 256  # bytes for an error detail from the core
_SEND_REQUEST = lib.CH_SEND_REQUEST
_SEND_NOCOPY = lib.CH_SEND_NOCOPY
NOCOPY_MIN = 64 * 1024  # data this big goes to the core uncopied
_EACH_MIN = 4096  # send_many: messages this big on average are not joined first
post = lib.ch_bridge_post  # the hot path, bound once


_raw_alloc = ffi.new_allocator(should_clear_after_alloc=False)


class _Scratch(threading.local):
    """Per-thread C buffers for the calls that wait, made once per thread."""

    def __init__(self) -> None:
        self.wait = ffi.new("ch_wait_t **")
        self.detail = ffi.new("char[]", _DETAIL)
        self.reply = ffi.new("ch_message_t **")
        self.one = ffi.new("ch_message_t *[1]")
        self.ptrs = ffi.new("ch_message_t *[]", BATCH)
        self.used = ffi.new("size_t *")  # ch_bridge_recv_copy's byte count
        self.meta: Any = None  # the copy path's buffers: only receivers need them
        self.fmeta: Any = None
        self.buf: Any = None
        self.fbuf: Any = None

    def copy_buffers(self) -> tuple[Any, Any, Any, Any]:
        """(meta, buf, and buffer views of both) for ch_bridge_recv_copy,
        made on first use."""
        if self.buf is None:
            self.meta = ffi.new("ch_msg_meta_t[]", BATCH)
            self.fmeta = ffi.buffer(self.meta)
            self.buf = _raw_alloc("char[]", COPY_BUF)  # written before read
            self.fbuf = ffi.buffer(self.buf)
        return self.meta, self.buf, self.fbuf, self.fmeta


class Core(AddressBook, Receiver):
    """Owns the native bridge.  Node holds it; the pump thread holds it too,
    but never the Node, so an unreferenced Node is collected and closed."""

    def __init__(self, cfg: Config, observer: Observer) -> None:
        self.cfg = cfg
        self.observer = observer  # peer events (the pump hands them over)
        c, keep = to_c(cfg)
        out = ffi.new("ch_bridge_t **")
        err = ffi.new("char[]", _DETAIL)
        rc = lib.ch_bridge_open(c, out, err, _DETAIL)
        del keep  # the core copied what it keeps
        if rc != 0:
            raise error_from(rc, ffi.string(err).decode(errors="replace"))
        # Freed when the last holder lets go, not by close(): a call that
        # races with close() meets a closed bridge (CH_ECLOSED), never a
        # freed one, without a lock around every call.
        self.b = ffi.gc(out[0], lib.ch_bridge_free)
        self.port: int = lib.ch_bridge_port(self.b)
        ident = ffi.new("uint8_t[16]")
        lib.ch_bridge_identity(self.b, ident)
        self.identity: bytes = bytes(ident)
        self.auto_release = cfg.auto_release
        self.small = min(cfg.max_msg_size, 0xFFFF)  # no size check needed up to here
        self.lock = threading.Lock()
        self.closing = False
        self.pid = os.getpid()  # the process whose node this is
        self.forked = False  # this process is a child that inherited it
        self.ref = weakref.ref(self)  # what Futures hold: not the node's memory
        self.tokens = itertools.count(1)
        self.pending: dict[int, ChirpFuture[Any]] = {}
        self.keep: dict[int, Any] = {}  # token -> data the core reads uncopied
        self.deadlines: list[tuple[float, int]] = []
        self.inbox: deque[Message] = deque()
        self.fd_used = False  # see _take_max
        self.local = _Scratch()
        AddressBook.__init__(self)
        self.links: dict[Any, Any] = {}  # event loop -> _aio.Link
        self.pump_thread = threading.Thread(
            target=_pump.run, args=(self,), name=f"chirp-pump-{self.port}", daemon=True
        )
        self.pump_thread.start()
        LIVE.add(self)

    def closed_error(self) -> ClosedError:
        """The error of any call on a closed node, or on one inherited from
        the parent process."""
        if self.forked:
            return ClosedError(
                f"this node was created in process {self.pid}; a process made by "
                f"fork() cannot use it (make a new node in process {os.getpid()})"
            )
        return ClosedError("node is closed")

    def inherited(self) -> None:
        """In a child just made by fork(): the node is the parent's.  Every
        call raises closed_error() and nothing of the parent's bridge is
        touched, not even freed (its loop thread does not exist here, its
        sockets and TLS state are the parent's)."""
        self.forked = True
        self.closing = True
        self.forget_addresses(Uncached())
        self.inbox = deque()
        self.b = ffi.gc(self.b, None)  # no ch_bridge_free in this process

    def hurry(self) -> None:
        """Somebody waits on a Future: the pump hands completions out at once."""
        if not self.closing:
            lib.ch_bridge_hurry(self.b)

    # -- sending ----------------------------------------------------------

    def check(self, data: Buffer, header: Buffer) -> tuple[bytes, bytes]:
        """data and header as bytes, within the size limits."""
        if not isinstance(data, bytes):
            data = as_bytes("data", data)
        if not isinstance(header, bytes):
            header = as_bytes("header", header)
        if len(header) > 0xFFFF:
            raise MessageSizeError(f"header is {len(header)} bytes, at most 65535 allowed")
        if len(header) + len(data) > self.cfg.max_msg_size:
            raise MessageSizeError(
                f"message is {len(header) + len(data)} bytes, "
                f"max_msg_size is {self.cfg.max_msg_size}"
            )
        return data, header

    def _abandon(self, wait: Any) -> None:
        """Stop waiting for a send or request (timeout, Ctrl-C)."""
        if wait[0] != ffi.NULL:
            lib.ch_bridge_abandon(self.b, wait[0])
            wait[0] = ffi.NULL

    def send_wait(
        self, addr: Address, data: Buffer, header: Buffer, identity: bytes | None = None
    ) -> None:
        """Send and wait in C for the result: no Future, no pump thread."""
        if self.closing:
            raise self.closed_error()
        dest = self.resolve(addr)
        data, header = self.check(data, header)
        ident = ffi.NULL if identity is None else ffi.from_buffer("uint8_t[]", identity)
        wait, detail = self.local.wait, self.local.detail
        rc = lib.ch_bridge_send_wait(
            self.b, dest, data, len(data), header, len(header), ident, SLICE_MS,
            wait, detail, _DETAIL,
        )  # fmt: skip
        try:
            while rc == lib.CH_EAGAIN:  # a slice at a time, so Ctrl-C works
                rc = lib.ch_bridge_wait(self.b, wait, SLICE_MS, ffi.NULL, detail, _DETAIL)
        except BaseException:
            self._abandon(wait)
            raise
        if rc != 0:
            raise error_from(rc, ffi.string(detail).decode(errors="replace"))

    def request_wait(self, addr: Address, data: Buffer, header: Buffer, timeout: float) -> Message:
        """Send a request and wait in C for its reply: no Future, no pump."""
        if self.closing:
            raise self.closed_error()
        dest = self.resolve(addr)
        data, header = self.check(data, header)
        local = self.local
        wait, reply, detail = local.wait, local.reply, local.detail
        deadline = time.monotonic() + timeout
        rc = lib.ch_bridge_request_wait(
            self.b, dest, data, len(data), header, len(header), slice_ms(deadline),
            wait, reply, detail, _DETAIL,
        )  # fmt: skip
        try:
            while rc == lib.CH_EAGAIN:
                if time.monotonic() >= deadline:
                    raise ChirpTimeoutError(f"no reply within {timeout} s")
                rc = lib.ch_bridge_wait(self.b, wait, slice_ms(deadline), reply, detail, _DETAIL)
        except BaseException:
            self._abandon(wait)
            raise
        if rc != 0:
            raise error_from(rc, ffi.string(detail).decode(errors="replace"))
        msg = self.make_message(reply[0])
        lib.ch_bridge_release(self.b, reply, 1)
        return msg

    def _register(self, token: int) -> ChirpFuture[Any]:
        """A new Future for token, registered before the core can finish it
        (the pump looks it up); no lock: dict operations are atomic, and a
        node closed meanwhile refuses the send (CH_ECLOSED)."""
        fut: ChirpFuture[Any] = _futures.new_future()
        fut._core_ref = self.ref
        self.pending[token] = fut
        return fut

    def _refused(self, rc: int, token: int) -> None:
        self.pending.pop(token, None)
        self.keep.pop(token, None)
        raise error_from(rc)

    def send(
        self,
        addr: Address,
        data: Buffer,
        header: Buffer,
        identity: bytes | None = None,
        request: bool = False,
        timeout: float | None = None,
    ) -> ChirpFuture[Any]:
        """Queue a message (any size, a reply, a request); a Future."""
        if self.closing:
            raise self.closed_error()
        dest = self.cached(addr) or self.resolve(addr)
        if (
            type(data) is not bytes
            or type(header) is not bytes
            or len(data) + len(header) > self.small
        ):
            data, header = self.check(data, header)
        ident = ffi.NULL if identity is None else ffi.from_buffer("uint8_t[]", identity)
        flags = _SEND_REQUEST if request else 0
        nocopy = len(data) >= NOCOPY_MIN
        if nocopy:
            flags |= _SEND_NOCOPY
        token = next(self.tokens)
        fut = self._register(token)
        if request:
            fut._token = token
            fut._plain = False
            if timeout is not None:
                with self.lock:
                    heapq.heappush(self.deadlines, (time.monotonic() + timeout, token))
        if nocopy:
            # The core writes straight from the bytes object: kept alive
            # until the send's own completion event.
            self.keep[token] = data
        rc = lib.ch_bridge_send(
            self.b, token, dest, data, len(data), header, len(header), ident, flags
        )
        if rc != 0:
            self._refused(rc, token)
        return fut

    def send_batch(self, addr: Address, items: Any, header: Buffer) -> ChirpFuture[None]:
        """Queue many messages to one remote in one crossing; one Future."""
        if self.closing:
            raise self.closed_error()
        dest = self.resolve(addr)
        datas = [d if type(d) is bytes else as_bytes("data", d) for d in items]
        if not isinstance(header, bytes):
            header = as_bytes("header", header)
        if not datas:
            fut: ChirpFuture[Any] = _futures.new_future()
            fut._finish(None, None)
            return fut
        lens = [len(d) for d in datas]
        biggest = max(lens) + len(header)
        if len(header) > 0xFFFF or biggest > self.cfg.max_msg_size:
            raise MessageSizeError(
                f"a message of {biggest} bytes (header {len(header)}) exceeds "
                f"max_msg_size {self.cfg.max_msg_size} or the 65535-byte header limit"
            )
        clens = ffi.new("size_t[]", lens)
        total = sum(lens)
        token = next(self.tokens)
        fut = self._register(token)
        if total >= NOCOPY_MIN and total >= _EACH_MIN * len(datas):
            # Big messages: written from their own bytes objects (kept
            # alive in self.keep, as in send()), no joined copy.
            self.keep[token] = datas
            ptrs = ffi.new("char *[]", [ffi.from_buffer(d) for d in datas])
            rc = lib.ch_bridge_send_each(
                self.b, token, dest, ptrs, clens, len(lens), header, len(header)
            )
        else:
            joined = b"".join(datas)
            nocopy = total >= NOCOPY_MIN  # kept alive in self.keep, as in send()
            if nocopy:
                self.keep[token] = joined
            rc = lib.ch_bridge_send_many(
                self.b, token, dest, joined, clens, len(lens), header, len(header),
                _SEND_NOCOPY if nocopy else 0,
            )  # fmt: skip
        if rc != 0:
            self._refused(rc, token)
        return fut

    def fileno(self) -> int:
        """The bridge's fd for selectors (see Node.fileno)."""
        if self.forked:
            raise self.closed_error()
        with self.lock:
            if self.closing:
                raise self.closed_error()
            fd: int = lib.ch_bridge_fd(self.b)
            if fd < 0:
                raise OSError("chirp: cannot make the notification fd")
            self.fd_used = True
            return fd

    # -- closing ----------------------------------------------------------

    def close(self, linger: float | None = None, join: bool = True) -> None:
        """Close the bridge: pending sends get up to linger seconds (None:
        the node's linger) to complete, then the rest fails.  join=False
        (the Node was collected): do not wait for the pump, which may
        itself wait for a lock the collecting thread holds; it ends on its
        own.  Does nothing in a child that inherited the node."""
        if self.forked:
            return  # the parent's: its lock may even be held by a dead thread
        with self.lock:
            if self.closing:
                return
            self.closing = True
        for lk in list(self.links.values()):  # coroutines waiting in arecv()
            lk.fail_soon(self.closed_error())
        # Wait for the loop thread (up to the linger) a slice at a time, so
        # that Ctrl-C works meanwhile: it ends the linger at once.  The
        # memory goes with self.b.
        lib.ch_bridge_close_start(self.b, -1.0 if linger is None else float(linger))
        try:
            while lib.ch_bridge_close_wait(self.b, SLICE_MS) == lib.CH_EAGAIN:
                pass
        except BaseException:
            lib.ch_bridge_close_start(self.b, 0.0)
            lib.ch_bridge_close_wait(self.b, -1)
            raise
        finally:
            if join and threading.current_thread() is not self.pump_thread:
                self.pump_thread.join()
            self.keep.clear()  # the loop thread is gone: nothing reads them
            self.fail_left()

    def withdraw(self, token: int) -> None:
        """A request's Future was cancelled: forget its reply in the core
        (one that comes later is dropped, never received)."""
        if not self.closing:
            lib.ch_bridge_cancel(self.b, token)

    def losses(self) -> tuple[int, str]:
        """After close: how many sends failed once it had begun, and to whom."""
        text = ffi.new("char[]", 1024)
        n = lib.ch_bridge_losses(self.b, text, 1024)
        return n, ffi.string(text).decode(errors="replace")

    def fail_left(self) -> None:
        """Fail the Futures still pending (the node is closed).  One at a
        time: the pump may put a request back meanwhile (see _pump)."""
        pending = self.pending
        while pending:
            try:
                _, fut = pending.popitem()
            except KeyError:  # another thread took the last one
                break
            what = "the reply arrived" if fut._token else "the send completed"
            fut._finish(None, ClosedError(f"node closed before {what}"))
