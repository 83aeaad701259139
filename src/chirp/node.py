"""The Python face of a chirp node: Node, Message, and the core they share.

The node's libuv loop runs on a native thread started by C; Python only
queues commands (one lock and one wake-up per batch) and drains events
with the GIL released while it waits.  A daemon "pump" thread turns send
completions and replies into Future results.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import struct
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import FINISHED as _FINISHED
from concurrent.futures._base import PENDING as _PENDING
from typing import Any

from ._chirp import ffi, lib
from .config import Config
from .errors import (
    ChirpConnectionError,
    ChirpError,
    ChirpTimeoutError,
    ClosedError,
    MessageSizeError,
    error_for,
)

log = logging.getLogger("chirp")

Address = tuple[str, int]
Buffer = bytes | bytearray | memoryview

_BATCH = 256
_BIG_BATCH = 1  # messages too big for the copy buffer taken at once
_COPY_BUF = 256 * 1024  # per receiving thread; bigger messages skip the copy path
_SLICE_MS = 200  # blocking waits wake up this often so Ctrl-C works
_DETAIL = 256  # bytes for an error detail from the core
_SEND_REQUEST = lib.CH_SEND_REQUEST
_bridge_post = lib.ch_bridge_post
_SEND_NOCOPY = lib.CH_SEND_NOCOPY
_NOCOPY_MIN = 64 * 1024  # send_async passes data this big to the core uncopied
_EACH_MIN = 4096  # send_many: messages this big on average are not joined first
_META = struct.Struct("=6I")  # ch_msg_meta_t: offset serial data_len header_len port flags
_SAME_SOURCE = lib.CH_META_SAME_SOURCE


def _errname(rc: int) -> str:
    return ffi.string(lib.ch_errname(rc)).decode()


def _raise(rc: int, detail: str = "") -> None:
    msg = detail or ffi.string(lib.ch_strerror(rc)).decode()
    raise error_for(_errname(rc), msg)


class Message:
    """A received message.  ``release()`` gives its slot back to the
    connection (and sends the ACK a synchronous sender waits for)."""

    __slots__ = (
        "data",
        "header",
        "identity",
        "serial",
        "address",
        "port",
        "remote_identity",
        "ip_protocol",
        "_core",
        "_ptr",
    )

    def __init__(
        self,
        data: bytes,
        header: bytes,
        identity: bytes,
        serial: int,
        address: str,
        port: int,
        remote_identity: bytes,
        ip_protocol: int = 4,
    ) -> None:
        self.data = data
        self.header = header
        self.identity = identity
        self.serial = serial
        self.address = address
        self.port = port
        self.remote_identity = remote_identity
        self.ip_protocol = ip_protocol
        # _core and _ptr are set only for a message still in its slot
        # (auto_release off): most messages never need them.

    @property
    def released(self) -> bool:
        """True once the slot was given back."""
        return getattr(self, "_ptr", None) is None

    def release(self) -> None:
        """Free the slot (and acknowledge, if asked); calling it again does nothing."""
        ptr = getattr(self, "_ptr", None)
        if ptr is None:
            return
        self._ptr = None
        self._core.release_one(ptr)

    def __enter__(self) -> Message:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"<chirp.Message from {self.address}:{self.port} serial={self.serial} "
            f"header={len(self.header)}B data={len(self.data)}B>"
        )


_raw_alloc = ffi.new_allocator(should_clear_after_alloc=False)


class _Scratch(threading.local):
    """Per-thread C buffers for the calls that wait, made once per thread."""

    def __init__(self) -> None:
        self.pending = ffi.new("void **")
        self.detail = ffi.new("char[]", _DETAIL)
        self.reply = ffi.new("ch_message_t **")
        self.one = ffi.new("ch_message_t *[1]")
        self.ptrs = ffi.new("ch_message_t *[]", _BATCH)
        self.used = ffi.new("size_t *")  # ch_bridge_recv_copy's byte count
        self.meta: Any = None  # the copy path's buffers: only receivers need them
        self.fmeta: Any = None
        self.buf: Any = None
        self.fbuf: Any = None

    def copy_buffers(self) -> tuple[Any, Any, Any, Any]:
        """(meta, buf, and buffer views of both) for ch_bridge_recv_copy,
        made on first use."""
        if self.buf is None:
            self.meta = ffi.new("ch_msg_meta_t[]", _BATCH)
            self.fmeta = ffi.buffer(self.meta)
            self.buf = _raw_alloc("char[]", _COPY_BUF)  # written before read
            self.fbuf = ffi.buffer(self.buf)
        return self.meta, self.buf, self.fbuf, self.fmeta


def _slice(deadline: float | None) -> int:
    """Milliseconds to wait in C before looking again (deadline or Ctrl-C)."""
    if deadline is None:
        return _SLICE_MS
    return max(0, min(_SLICE_MS, int((deadline - time.monotonic()) * 1000 + 0.999)))


# Orders making a condition vs finishing.  Reentrant: a garbage collection
# inside a locked section may run a Node's finalizer, which finishes that
# node's Futures in the same thread.
_FUTURE_LOCK = threading.RLock()
_FUTURE_FIELDS = frozenset(("_condition", "_state", "_result", "_exception", "_waiters",
                            "_done_callbacks"))  # fmt: skip
# The lazy Future below relies on concurrent.futures.Future's fields; on a
# Python whose Future has other fields it falls back to the plain one.
_LAZY_FUTURES = set(vars(Future())) == _FUTURE_FIELDS


def _watch(fut: Future) -> None:
    """Give a lazy Future the Condition and lists a Future waits with (on
    first use of any of them), and make the pump hand out its completion
    at once while it is pending: somebody waits or watches."""
    with _FUTURE_LOCK:
        if not fut._watched:  # type: ignore[attr-defined]
            d = fut.__dict__
            d["_cond"] = threading.Condition()
            d["_waiter_list"] = []
            d["_callback_list"] = []
            fut._watched = True  # type: ignore[attr-defined]
            fut._plain = False  # type: ignore[attr-defined]
    ref = fut._core_ref  # type: ignore[attr-defined]
    core = ref() if ref is not None else None
    if core is not None and fut._state == _PENDING:  # type: ignore[attr-defined]
        lib.ch_bridge_hurry(core.b)


def _lazy_field(key: str) -> property:
    """One of Future's _condition, _waiters, _done_callbacks, made by
    _watch when first used.  A property rather than __getattr__: a class
    with __getattr__ makes every attribute lookup on its instances slow."""

    def get(self: Future) -> Any:
        try:
            return self.__dict__[key]
        except KeyError:
            _watch(self)
            return self.__dict__[key]

    def put(self: Future, value: Any) -> None:
        self.__dict__[key] = value

    return property(get, put)


class _ChirpFuture(Future):
    """A Future for a message already handed to the core.

    It cannot be cancelled (the message may be on the wire).  Most send
    Futures are never waited on before they finish, so the Condition,
    waiter and callback lists a Future waits with are made only when
    somebody waits, asks for a callback or uses concurrent.futures.wait()
    (``_watched``); until then the pump finishes it with an assignment or
    three (``_finish``), and making one costs little more than an object."""

    _state = _PENDING
    _result: Any = None
    _exception: BaseException | None = None
    _watched = False  # the Condition and lists exist: notify on finishing
    _token = 0  # a request's token: finished by its reply, not its send
    _plain = True  # nobody watches, not a request: the pump assigns its state
    _core_ref: Any = None  # weakref to the _Core whose pump finishes it
    _condition = _lazy_field("_cond")
    _waiters = _lazy_field("_waiter_list")
    _done_callbacks = _lazy_field("_callback_list")

    __init__ = object.__init__  # nothing to set: the class defaults hold

    def _finish(self, result: Any, exc: BaseException | None) -> None:
        """Set the outcome (the pump, or a failing call): by assignment
        when nobody watches, else the usual way (notifying waiters)."""
        with _FUTURE_LOCK:
            if not self._watched:
                if self._state == _PENDING:
                    self._result = result
                    self._exception = exc
                    self._state = _FINISHED
                return
        if self.done():
            return
        try:
            if exc is None:
                self.set_result(result)
            else:
                self.set_exception(exc)
        except InvalidStateError:
            pass  # another thread finished it meanwhile (close vs pump)

    def cancel(self) -> bool:
        """Refused: a queued message cannot be recalled."""
        return False

    def cancelled(self) -> bool:
        """Always False (see cancel)."""
        return False

    def done(self) -> bool:
        """True once finished (reads the state without a lock: it only
        ever changes from pending to finished)."""
        return self._state == _FINISHED

    def result(self, timeout: float | None = None) -> Any:
        """As Future.result; a finished Future answers without locking."""
        if self._state == _FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """As Future.exception; a finished Future answers without locking."""
        if self._state == _FINISHED:
            return self._exception
        return super().exception(timeout)


class _PlainChirpFuture(_ChirpFuture):
    """The fallback for a Python whose Future has other fields than
    _ChirpFuture expects: a whole Future, Condition made at once."""

    # Plain attributes again (Future.__init__ sets them on the instance).
    _condition = _waiters = _done_callbacks = None  # type: ignore[assignment]

    def __init__(self) -> None:
        Future.__init__(self)
        self._watched = True
        self._plain = False


_new_future = _ChirpFuture if _LAZY_FUTURES else _PlainChirpFuture
_NO_FUTURES = itertools.repeat(_ChirpFuture())  # see _Core._succeed


class _Core:
    """Owns the native bridge.  Node holds it; the pump thread holds it too,
    but never the Node, so an unreferenced Node is collected and closed."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        c = ffi.new("ch_config_t *")
        lib.ch_config_init(c)
        c.port = cfg.port
        c.timeout = float(cfg.timeout)
        c.reuse_time = float(cfg.reuse_time)
        c.max_slots = cfg.max_slots
        c.synchronous = int(cfg.synchronous)
        c.buffer_size = cfg.buffer_size
        c.max_msg_size = cfg.max_msg_size
        c.bind_v4 = cfg.bind_v4.encode()
        c.bind_v6 = cfg.bind_v6.encode()
        if cfg.identity is not None:
            c.identity = cfg.identity
            c.has_identity = 1
        c.backlog = cfg.backlog
        c.disable_encryption = int(cfg.disable_encryption)
        keep = []
        if cfg.cert_chain_pem is not None:
            keep.append(ffi.new("char[]", str(cfg.cert_chain_pem).encode()))
            c.cert_chain_pem = keep[-1]
        if cfg.dh_params_pem is not None:
            keep.append(ffi.new("char[]", str(cfg.dh_params_pem).encode()))
            c.dh_params_pem = keep[-1]
        c.max_inflight = cfg.max_inflight
        c.spin_us = cfg.spin_us
        out = ffi.new("ch_bridge_t **")
        err = ffi.new("char[]", _DETAIL)
        rc = lib.ch_bridge_open(c, out, err, _DETAIL)
        if rc != 0:
            _raise(rc, ffi.string(err).decode(errors="replace"))
        # Freed when the last holder lets go, not by close(): a call that
        # races with close() meets a closed bridge (CH_ECLOSED), never a
        # freed one, without a lock around every call.
        self.b = ffi.gc(out[0], lib.ch_bridge_free)
        self.port: int = lib.ch_bridge_port(self.b)
        ident = ffi.new("uint8_t[16]")
        lib.ch_bridge_identity(self.b, ident)
        self.identity: bytes = bytes(ident)
        self.auto_release = cfg.auto_release
        if cfg.auto_release and cfg.inbox_size:
            # Every message is copied into Python anyway: let the core copy
            # small ones out of their slots at once (bounded; without it,
            # ENOMEM, messages simply wait in their slots).
            lib.ch_bridge_set_inbox(self.b, cfg.inbox_size)
        self.small = min(cfg.max_msg_size, 0xFFFF)  # no size check needed up to here
        self.lock = threading.Lock()
        self.closing = False
        self.ref = weakref.ref(self)  # what Futures hold: not the node's memory
        self.tokens = itertools.count(1)
        self.pending: dict[int, _ChirpFuture] = {}
        self.keep: dict[int, bytes] = {}  # token -> data the core reads uncopied
        self.deadlines: list[tuple[float, int]] = []
        self.inbox: deque[Message] = deque()
        self.fd_used = False  # see _take_max
        self.local = _Scratch()
        # (host, port) -> (ip_protocol, address cdata, port, ch_dest_t cdata)
        self.addr_cache: dict[tuple[str, int], tuple[int, Any, int, Any]] = {}
        self.names: dict[bytes, str] = {}  # raw address -> text
        self.pump_thread = threading.Thread(
            target=self._pump, name=f"chirp-pump-{self.port}", daemon=True
        )
        self.pump_thread.start()

    # -- addresses --------------------------------------------------------

    def resolve(self, addr: Address) -> tuple[int, Any, int, Any]:
        """(ip_protocol, address cdata, port, ch_dest_t cdata) for a
        (host, port) tuple."""
        hit = self.addr_cache.get(addr)  # type: ignore[arg-type]
        if hit is not None:
            return hit
        if not isinstance(addr, tuple) or len(addr) < 2:
            raise TypeError(f"address must be a (host, port) tuple, got {addr!r}")
        host, port = addr[0], addr[1]
        if not isinstance(host, str):
            raise TypeError(f"address host must be a str, got {type(host).__name__}")
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"address port must be an int, got {type(port).__name__}")
        if not 1 <= port <= 65535:
            raise ValueError(f"address port must be in 1..65535, got {port}")
        buf = ffi.new("uint8_t[16]")
        proto = ffi.new("uint8_t *")
        if lib.ch_parse_address(host.encode(), proto, buf) != 0:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                raise ChirpConnectionError(f"cannot resolve {host!r}: {e}") from None
            infos.sort(key=lambda i: i[0] != socket.AF_INET)
            ip = infos[0][4][0]
            if lib.ch_parse_address(ip.encode(), proto, buf) != 0:
                raise ChirpConnectionError(f"cannot use address {ip!r} of {host!r}")
        dest = ffi.new("ch_dest_t *")
        dest.ip_protocol = proto[0]
        ffi.memmove(dest.address, buf, 16)
        dest.port = port
        result = (int(proto[0]), buf, port, dest)
        if len(self.addr_cache) > 4096:
            self.addr_cache.clear()
        self.addr_cache[(host, port)] = result
        return result

    # -- sending ----------------------------------------------------------

    def _check(self, data: Buffer, header: Buffer) -> tuple[bytes, bytes]:
        if not isinstance(data, bytes):
            data = _as_bytes("data", data)
        if not isinstance(header, bytes):
            header = _as_bytes("header", header)
        if len(header) > 0xFFFF:
            raise MessageSizeError(f"header is {len(header)} bytes, at most 65535 allowed")
        if len(header) + len(data) > self.cfg.max_msg_size:
            raise MessageSizeError(
                f"message is {len(header) + len(data)} bytes, "
                f"max_msg_size is {self.cfg.max_msg_size}"
            )
        return data, header

    @staticmethod
    def _identity(identity: bytes | None) -> tuple[int, Any]:
        """(flags, identity cdata) for a send that keeps a given identity."""
        if identity is None:
            return 0, ffi.NULL
        return lib.CH_SEND_IDENTITY, ffi.from_buffer("uint8_t[]", identity)

    def _abandon(self, pending: Any) -> None:
        """Stop waiting for a send or request (timeout, Ctrl-C)."""
        if pending[0] != ffi.NULL:
            lib.ch_bridge_abandon(self.b, pending[0])
            pending[0] = ffi.NULL

    def send_wait(
        self, addr: Address, data: Buffer, header: Buffer, identity: bytes | None = None
    ) -> None:
        """Send and wait in C for the result: no Future, no pump thread."""
        proto, abuf, port, _ = self.resolve(addr)
        data, header = self._check(data, header)
        flags, ident = self._identity(identity)
        pending, detail = self.local.pending, self.local.detail
        rc = lib.ch_bridge_send_wait(
            self.b, 0, proto, abuf, port, header, len(header), data, len(data),
            ident, flags, _SLICE_MS, pending, detail, _DETAIL,
        )  # fmt: skip
        try:
            while rc == lib.CH_EAGAIN:  # a slice at a time, so Ctrl-C works
                rc = lib.ch_bridge_wait(self.b, pending, _SLICE_MS, detail, _DETAIL)
        except BaseException:
            self._abandon(pending)
            raise
        if rc != 0:
            _raise(rc, ffi.string(detail).decode(errors="replace"))

    def request_wait(self, addr: Address, data: Buffer, header: Buffer, timeout: float) -> Message:
        """Send a request and wait in C for its reply: no Future, no pump."""
        proto, abuf, port, _ = self.resolve(addr)
        data, header = self._check(data, header)
        local = self.local
        pending, reply, detail = local.pending, local.reply, local.detail
        deadline = time.monotonic() + timeout
        rc = lib.ch_bridge_request_wait(
            self.b, proto, abuf, port, header, len(header), data, len(data),
            _slice(deadline), pending, reply, detail, _DETAIL,
        )  # fmt: skip
        try:
            while rc == lib.CH_EAGAIN:
                if time.monotonic() >= deadline:
                    raise ChirpTimeoutError(f"no reply within {timeout} s")
                rc = lib.ch_bridge_wait_reply(
                    self.b, pending, _slice(deadline), reply, detail, _DETAIL
                )
        except BaseException:
            self._abandon(pending)
            raise
        if rc == 0:
            msg = self.make_message(reply[0])
            lib.ch_bridge_release(self.b, reply, 1)
        if rc != 0:
            _raise(rc, ffi.string(detail).decode(errors="replace"))
        return msg

    def send_async(self, address: Address, data: Buffer, header: Buffer = b"") -> Future:
        """Node.send_async itself (bound to the node): a known address and
        small bytes go straight to the core; anything else takes send()."""
        hit = self.addr_cache.get(address)  # type: ignore[arg-type]
        if (
            hit is None
            or type(data) is not bytes
            or type(header) is not bytes
            or len(data) + len(header) > self.small
        ):
            return self.send(address, data, header)
        fut = _new_future()
        fut._core_ref = self.ref
        token = next(self.tokens)
        self.pending[token] = fut  # before the core can finish it
        rc = _bridge_post(self.b, token, hit[3], data, len(data), header, len(header))
        if rc != 0:
            self.pending.pop(token, None)
            _raise(rc)
        return fut

    def send(
        self,
        addr: Address,
        data: Buffer,
        header: Buffer,
        identity: bytes | None = None,
        request: bool = False,
        timeout: float | None = None,
    ) -> Future:
        hit = self.addr_cache.get(addr)  # type: ignore[arg-type]
        proto, abuf, port, _ = hit if hit is not None else self.resolve(addr)
        if (
            type(data) is not bytes
            or type(header) is not bytes
            or len(data) + len(header) > self.small
        ):
            data, header = self._check(data, header)
        if identity is None:
            flags, ident = 0, ffi.NULL
        else:
            flags, ident = self._identity(identity)
        if request:
            flags |= _SEND_REQUEST
        nocopy = len(data) >= _NOCOPY_MIN
        if nocopy:
            flags |= _SEND_NOCOPY
        fut = _new_future()
        fut._core_ref = self.ref
        token = next(self.tokens)
        # Registered before the core can finish it (the pump looks it up);
        # no lock: dict operations are atomic, and a node closed meanwhile
        # refuses the send (CH_ECLOSED).
        self.pending[token] = fut
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
            self.b, token, proto, abuf, port, header, len(header), data, len(data),
            ident, flags,
        )  # fmt: skip
        if rc != 0:
            self.pending.pop(token, None)
            self.keep.pop(token, None)
            _raise(rc)
        return fut

    def send_batch(self, addr: Address, items: Any, header: Buffer) -> Future:
        """Queue many messages to one remote in one crossing; one Future."""
        proto, abuf, port, _ = self.resolve(addr)
        datas = [d if type(d) is bytes else _as_bytes("data", d) for d in items]
        if not isinstance(header, bytes):
            header = _as_bytes("header", header)
        if not datas:
            fut = _new_future()
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
        fut = self.pending[token] = _new_future()
        fut._core_ref = self.ref
        if total >= _NOCOPY_MIN and total >= _EACH_MIN * len(datas):
            # Big messages: written from their own bytes objects (kept
            # alive in self.keep, as in send()), no joined copy.
            self.keep[token] = datas
            ptrs = ffi.new("char *[]", [ffi.from_buffer(d) for d in datas])
            rc = lib.ch_bridge_send_each(
                self.b, token, proto, abuf, port, header, len(header), ptrs, clens, len(lens)
            )
        else:
            joined = b"".join(datas)
            nocopy = total >= _NOCOPY_MIN  # kept alive in self.keep, as in send()
            if nocopy:
                self.keep[token] = joined
            rc = lib.ch_bridge_send_many(
                self.b, token, proto, abuf, port, header, len(header), joined, clens,
                len(lens), _SEND_NOCOPY if nocopy else 0,
            )  # fmt: skip
        if rc != 0:
            self.pending.pop(token, None)
            self.keep.pop(token, None)
            _raise(rc)
        return fut

    # -- the pump: completions and replies --------------------------------

    def _pump(self) -> None:
        events = ffi.new("ch_event_t[]", _BATCH)
        self.pump_one = ffi.new("ch_message_t *[1]")
        while True:
            wait = _SLICE_MS
            if self.deadlines:
                wait = max(0, min(wait, int((self.deadlines[0][0] - time.monotonic()) * 1000)))
            n = lib.ch_bridge_poll(self.b, events, _BATCH, wait)
            if n == lib.CH_ECLOSED:
                break
            if n > 0 and self._dispatch(events, n):
                break
            if self.deadlines:
                self._expire()
        # close() fails what is left too, but when it ran without waiting
        # for the pump (on this thread, or from the garbage collector) a
        # request may have been put back after it looked (_succeed).
        self._fail_left()

    def _dispatch(self, events: Any, n: int) -> bool:
        closed = False
        pending = self.pending
        for i in range(n):
            ev = events[i]
            if ev.type == lib.CH_EV_CLOSED:
                closed = True
                continue
            token = ev.token
            if ev.type == lib.CH_EV_REPLY:
                msg = self.make_message(ev.msg)
                self.pump_one[0] = ev.msg
                lib.ch_bridge_release(self.b, self.pump_one, 1)
                fut = pending.pop(token, None)
                if fut is not None:
                    fut._finish(msg, None)
                continue
            status = ev.status
            if status == 0:  # tokens token .. token + count - 1 succeeded
                self._succeed(token, ev.count)
                continue
            if self.keep:
                self.keep.pop(token, None)
            fut = pending.pop(token, None)
            if fut is not None:
                detail = ffi.string(ev.detail).decode(errors="replace")
                fut._finish(None, error_for(_errname(status), detail))
        return closed

    def _succeed(self, first: int, count: int) -> None:
        """Finish the sends first .. first + count - 1 (not requests: they
        wait on for the reply), under one lock for the whole run."""
        pending = self.pending
        if self.keep:
            for t in range(first, first + count):
                self.keep.pop(t, None)
        slow = []
        with _FUTURE_LOCK:
            # map() pops in C; a token with no Future (a waited send's)
            # yields the stand-in of _NO_FUTURES, which takes the
            # assignment harmlessly.
            for fut in map(pending.pop, range(first, first + count), _NO_FUTURES):
                if fut._plain:
                    fut._state = _FINISHED  # _result and _exception are None
                else:
                    slow.append(fut)
        for fut in slow:
            if fut._token:
                pending[fut._token] = fut  # finished by its reply, not this
            else:
                fut._finish(None, None)  # somebody waits: notify them

    def _expire(self) -> None:
        now = time.monotonic()
        while True:
            with self.lock:  # senders push meanwhile
                if not self.deadlines or self.deadlines[0][0] > now:
                    return
                _, token = heapq.heappop(self.deadlines)
            fut = self.pending.pop(token, None)
            if fut is None:
                continue
            lib.ch_bridge_cancel(self.b, token)
            fut._finish(None, ChirpTimeoutError("no reply within the request timeout"))

    # -- receiving --------------------------------------------------------

    def _address(self, proto: int, raw: bytes) -> str:
        """Text of a raw address (4 or 16 bytes), cached: peers are few."""
        name = self.names.get(raw)
        if name is None:
            name = socket.inet_ntop(socket.AF_INET6 if proto == 6 else socket.AF_INET, raw)
            if len(self.names) < 4096:
                self.names[raw] = name
        return name

    def make_message(self, p: Any) -> Message:
        """A Message from a message still in its slot (the pointer path)."""
        hl, dl = p.header_len, p.data_len
        proto = p.ip_protocol
        return Message(
            ffi.buffer(p.data, dl)[:] if dl else b"",
            ffi.buffer(p.header, hl)[:] if hl else b"",
            ffi.buffer(p.identity, 16)[:],
            p.serial,
            self._address(proto, ffi.buffer(p.address, 16 if proto == 6 else 4)[:]),
            p.port,
            ffi.buffer(p.remote_identity, 16)[:],
            proto,
        )

    def _take(self, call: Any, deadline: float | None, timeout: float | None) -> int:
        """Run call(wait_ms) until it returns messages (> 0) or 0; raises
        ClosedError, or ChirpTimeoutError at the deadline.  -1: another
        thread left messages in the inbox."""
        while True:
            if self.closing:
                raise ClosedError("node is closed")
            n = call(_slice(deadline))
            if n >= 0:
                return n
            if n == lib.CH_ECLOSED:
                raise ClosedError("node is closed")
            if self.inbox:
                return -1
            if deadline is not None and time.monotonic() >= deadline:
                raise ChirpTimeoutError(f"no message within {timeout} s")

    def _take_max(self, max_count: int) -> int:
        """How many messages to take from the core at once: a whole batch
        (the rest waits in the inbox for the next recv), but no more than
        asked for once fileno() is in use, so that the fd tells the truth."""
        return min(max_count, _BATCH) if self.fd_used else _BATCH

    def recv_many(self, max_count: int, timeout: float | None) -> list[Message]:
        """Up to max_count messages; waits up to timeout for the first one."""
        out: list[Message] = []
        inbox = self.inbox
        while inbox and len(out) < max_count:
            try:
                out.append(inbox.popleft())
            except IndexError:
                break
        if out:
            return out
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.auto_release:
            got = self._recv_copied(max_count, deadline, timeout)
            if got is not None:
                return got
        arr = self.local.ptrs
        # With auto_release this path is taken only for messages too big
        # for the copy buffer: one at a time (a few megabytes of copies
        # freed together make the C allocator give the memory back to the
        # system, and the next copies fault it in again page by page: a
        # 1 MiB stream into recv_many ran at half the rate with 4 here).
        most = min(max_count, _BIG_BATCH) if self.auto_release else self._take_max(max_count)
        n = self._take(
            lambda wait: lib.ch_bridge_recv(self.b, arr, most, wait),
            deadline,
            timeout,
        )
        if n <= 0:  # another thread left messages for us
            return self.recv_many(max_count, 0)
        msgs = [self.make_message(arr[i]) for i in range(n)]
        if self.auto_release:
            self.release_ptrs(arr, n)
        else:
            for i in range(n):
                msgs[i]._core = self
                msgs[i]._ptr = arr[i]
        if n > max_count:
            inbox.extend(msgs[max_count:])
            del msgs[max_count:]
        return msgs

    def _recv_copied(
        self, max_count: int, deadline: float | None, timeout: float | None
    ) -> list[Message] | None:
        """Auto-release receive: C copies a batch into one buffer and gives
        the slots back at once, so the connection refills while Python
        builds the messages.  None: the next message is too big for the
        buffer; take it through the pointer path."""
        local = self.local
        meta, buf, fb, fmeta = local.copy_buffers()
        used = local.used
        n = self._take(
            lambda wait: lib.ch_bridge_recv_copy(
                self.b, meta, self._take_max(max_count), buf, _COPY_BUF, wait, used
            ),
            deadline,
            timeout,
        )
        if n == 0:  # too big to copy here
            return None
        if n < 0:  # another thread left messages for us
            return self.recv_many(max_count, 0)
        end = used[0]
        # Small messages: one copy of the batch, then cheap bytes slices;
        # big ones are sliced from the C buffer (no second copy of them).
        raw = fb[0:end] if end <= n * 4096 else fb
        address = self._address
        msgs = []
        append = msgs.append
        addr = rid = None
        for off, serial, dl, hl, port, flags in _META.iter_unpack(fmeta[0 : n * _META.size]):
            proto = flags & 0xFF
            if not flags & _SAME_SOURCE:
                rid = raw[off + 16 : off + 32]
                addr = address(proto, raw[off + 32 : off + (48 if proto == 6 else 36)])
            body = off + 48
            append(
                Message(
                    raw[body + hl : body + hl + dl] if dl else b"",
                    raw[body : body + hl] if hl else b"",
                    raw[off : off + 16],
                    serial,
                    addr,
                    port,
                    rid,
                    proto,
                )
            )
        if n > max_count:
            self.inbox.extend(msgs[max_count:])
            del msgs[max_count:]
        return msgs

    def release_ptrs(self, arr: Any, n: int) -> None:
        lib.ch_bridge_release(self.b, arr, n)  # does nothing once closed

    def release_one(self, ptr: Any) -> None:
        one = self.local.one
        one[0] = ptr
        self.release_ptrs(one, 1)

    # -- closing ----------------------------------------------------------

    def close(self, join: bool = True) -> None:
        """Close the bridge and fail what is left.  join=False (the Node
        was collected): do not wait for the pump, which may itself wait
        for a lock the collecting thread holds; it ends on its own."""
        with self.lock:
            if self.closing:
                return
            self.closing = True
        lib.ch_bridge_close(self.b)  # joins the loop thread; freed with self.b
        if join and threading.current_thread() is not self.pump_thread:
            self.pump_thread.join()
        self.keep.clear()  # the loop thread is gone: nothing reads them
        self._fail_left()

    def _fail_left(self) -> None:
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


def _as_bytes(name: str, value: Any) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        raise TypeError(f"{name} must be bytes-like, not str (encode it first)")
    raise TypeError(f"{name} must be bytes-like, got {type(value).__name__}")


class Node:
    """A chirp node: listens on ``port``, sends to and receives from other nodes.

    Every option of :class:`chirp.Config` is a keyword; a ``Config`` may be
    passed too.  Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, config: Config | None = None, **options: Any) -> None:
        if config is not None and not isinstance(config, Config):
            raise TypeError(f"config must be a chirp.Config, got {type(config).__name__}")
        if config is None:
            cfg = Config(**options)
        elif options:
            cfg = config.replace(**options)
        else:
            cfg = config
        self._core = _Core(cfg)
        self._finalizer = weakref.finalize(self, _Core.close, self._core, False)
        # The hottest call goes straight to the core (one Python frame
        # less per message); the method below documents it.  Not when a
        # subclass overrides it.
        if type(self).send_async is Node.send_async:
            self.send_async = self._core.send_async  # type: ignore[method-assign]
        log.debug("node %s listening on port %d", self._core.identity.hex(), self._core.port)

    # -- properties --------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the node listens on (the real one when configured 0)."""
        return self._core.port

    @property
    def identity(self) -> bytes:
        """The node's 16-byte identity."""
        return self._core.identity

    @property
    def config(self) -> Config:
        """The configuration in use."""
        return self._core.cfg

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._core.closing

    # -- sending -----------------------------------------------------------

    def send_async(self, address: Address, data: Buffer, header: Buffer = b"") -> Future:
        """Queue a message; the Future resolves to None when it is written
        (asynchronous mode) or acknowledged (synchronous mode), or fails."""
        return self._core.send_async(address, data, header)

    def send(self, address: Address, data: Buffer, header: Buffer = b"") -> None:
        """Send and block until written / acknowledged; raises on failure."""
        self._core.send_wait(address, data, header)

    def send_many(self, address: Address, items: Any, header: Buffer = b"") -> Future:
        """Queue many messages (an iterable of bytes) to one remote in one step.

        Far cheaper per message than send_async.  The one Future resolves to
        None when every message is written (asynchronous mode) or
        acknowledged (synchronous mode); if any failed, it fails with the
        first error, whose message says how many failed.  Order is kept.
        """
        return self._core.send_batch(address, items, header)

    def reply(self, msg: Message, data: Buffer, header: Buffer = b"") -> None:
        """Answer msg: same identity, back to the node that sent it; blocks like send()."""
        if not isinstance(msg, Message):
            raise TypeError(f"msg must be a chirp.Message, got {type(msg).__name__}")
        self._core.send_wait((msg.address, msg.port), data, header, identity=msg.identity)

    def reply_async(self, msg: Message, data: Buffer, header: Buffer = b"") -> Future:
        """Queue the answer to msg; a Future like send_async's."""
        if not isinstance(msg, Message):
            raise TypeError(f"msg must be a chirp.Message, got {type(msg).__name__}")
        return self._core.send((msg.address, msg.port), data, header, identity=msg.identity)

    def request_async(
        self,
        address: Address,
        data: Buffer,
        header: Buffer = b"",
        timeout: float | None = None,
    ) -> Future:
        """Send and resolve to the reply (the message with the same identity).
        With a timeout the Future fails with ChirpTimeoutError when no reply came."""
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        return self._core.send(address, data, header, request=True, timeout=timeout)

    def request(
        self,
        address: Address,
        data: Buffer,
        header: Buffer = b"",
        timeout: float | None = None,
    ) -> Message:
        """Send and block until the reply arrives (default timeout: 2 x config timeout)."""
        if timeout is None:
            timeout = 2 * self._core.cfg.timeout
        elif not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        return self._core.request_wait(address, data, header, timeout)

    # -- receiving -----------------------------------------------------------

    def recv(self, timeout: float | None = None) -> Message:
        """The next message; raises TimeoutError (ChirpTimeoutError) if none
        arrives within timeout seconds (None: wait forever)."""
        inbox = self._core.inbox
        if inbox and (timeout is None or (type(timeout) is float and timeout >= 0)):
            try:  # the batch the last wait brought: no C call, no lock
                return inbox.popleft()
            except IndexError:  # another thread took it
                pass
        return self._core.recv_many(1, _check_timeout(timeout))[0]

    def recv_many(self, max_count: int = 64, timeout: float | None = None) -> list[Message]:
        """Up to max_count messages at once, waiting up to timeout for the first."""
        if max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        return self._core.recv_many(max_count, _check_timeout(timeout))

    def __iter__(self) -> Node:
        return self

    def __next__(self) -> Message:
        try:
            return self.recv()
        except ClosedError:
            raise StopIteration from None

    def fileno(self) -> int:
        """An fd that is readable while received messages wait (for selectors).

        Once it was asked for, recv()/recv_many() take no more messages
        from the core than they return, so the fd stays exact; after it
        turns readable, receive with timeout=0 until ChirpTimeoutError."""
        core = self._core
        with core.lock:
            if core.closing:
                raise ClosedError("node is closed")
            fd = lib.ch_bridge_fd(core.b)
            if fd < 0:
                raise OSError("chirp: cannot make the notification fd")
            core.fd_used = True
            return fd

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Close: pending sends complete or fail, the loop thread is joined,
        its sockets and fds are closed (the fileno() fd, readable now, and
        the memory go with the last reference to the node).  Calling it
        again does nothing."""
        if self._finalizer.detach() is not None:
            self._core.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<chirp.Node port={self.port} identity={self.identity.hex()} {state}>"


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number or None, got {type(timeout).__name__}")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout}")
    return float(timeout)


__all__ = ["Node", "Message", "ChirpError"]
