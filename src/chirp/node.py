"""Node: the face of a chirp node.

A plain facade over the C glue (_core.py): every method is defined here,
with what it promises; the work is the core's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any

from . import _aio, _futures, _observe, _serve
from ._addresses import Address
from ._chirp import lib
from ._core import Buffer, Core, post
from ._futures import ChirpFuture
from ._lifecycle import collected
from .config import Config
from .errors import ChirpTimeoutError, ClosedError, error_from
from .events import PeerEvent, PeerInfo
from .message import Message

log = logging.getLogger("chirp")
_EAGAIN = lib.CH_EAGAIN


class _Unset:
    """The default of Node's option keywords: "not given" (then the
    config's value, or the option's default, holds)."""

    def __repr__(self) -> str:
        return "<default>"


_UNSET: Any = _Unset()
_NOT_OPTIONS = frozenset(("self", "config", "on_event", "__class__"))


class Node:
    """A chirp node: listens on ``port``, sends to and receives from other nodes.

    Every option of :class:`chirp.Config` is a keyword (see there, or
    docs/options.md, for what each does); a ``Config`` may be passed too,
    and keywords given beside it override its values.  ``on_event`` is
    called with a :class:`chirp.PeerEvent` each time a connection opens,
    closes or is refused, on chirp's pump thread (never the node's loop
    thread), in order; keep it short: the pump also finishes the Futures.
    Use the node as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        port: int = _UNSET,
        timeout: float = _UNSET,
        reuse_time: float = _UNSET,
        max_slots: int = _UNSET,
        synchronous: bool = _UNSET,
        buffer_size: int = _UNSET,
        max_msg_size: int = _UNSET,
        bind_v4: str = _UNSET,
        bind_v6: str = _UNSET,
        identity: bytes | None = _UNSET,
        backlog: int = _UNSET,
        disable_encryption: bool = _UNSET,
        cert_chain_pem: str | None = _UNSET,
        dh_params_pem: str | None = _UNSET,
        auto_release: bool = _UNSET,
        linger: float | None = _UNSET,
        max_inflight: int = _UNSET,
        spin_us: int = _UNSET,
        inbox_size: int = _UNSET,
        max_memory: int = _UNSET,
        max_peer_connections: int = _UNSET,
        on_event: Callable[[PeerEvent], object] | None = None,
    ) -> None:
        # The options given (the rest: config's, or the defaults).
        given = {k: v for k, v in locals().items() if v is not _UNSET and k not in _NOT_OPTIONS}
        if config is not None and not isinstance(config, Config):
            raise TypeError(f"config must be a chirp.Config, got {type(config).__name__}")
        if config is None:
            cfg = Config(**given)
        elif given:
            cfg = config.replace(**given)
        else:
            cfg = config
        self._core = Core(cfg, _observe.Observer(on_event))
        # Collected while open: collected().  At exit: _lifecycle's handler.
        self._finalizer = weakref.finalize(self, collected, self._core)
        self._finalizer.atexit = False
        self._stop = threading.Event()  # see stop()
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
        """True once close() was called (and in a process made by fork(),
        where the node is the parent's)."""
        return self._core.closing

    # -- sending -----------------------------------------------------------

    def send_async(self, address: Address, data: Buffer, header: Buffer = b"") -> ChirpFuture[None]:
        """Queue a message; the Future resolves to None when it is written
        (asynchronous mode) or acknowledged (synchronous mode), or fails."""
        # The hottest call: a known address and small bytes go straight to
        # the core from here; anything else takes the general path.
        core = self._core
        dest = core.fast_dest(address, data, header)
        if dest is None:
            return core.send(address, data, header)
        fut: ChirpFuture[None] = _futures.new_future()
        fut._core_ref = core.ref
        token = next(core.tokens)
        core.pending[token] = fut  # before the core can finish it
        rc = post(core.b, token, dest, data, len(data), header, len(header))
        if rc != 0:
            core._refused(rc, token)
        return fut

    def post(self, address: Address, data: Buffer, header: Buffer = b"") -> None:
        """Queue a message with no Future: the cheapest send.  Nobody waits
        for its result, so a failure (also a synchronous node's missing
        acknowledgement) is logged as a warning on the ``chirp`` logger
        and counted in stats()["sends_failed"]; it is never silent.  What
        is known at once (closed node, bad arguments) raises here.  Posts
        are paced: while 65,536 posted messages (or 64 MiB of them) are not
        yet written (synchronous: acknowledged), post() blocks, at most
        the node's timeout; then it raises ChirpTimeoutError and this
        message is not queued."""
        core = self._core
        dest = core.fast_dest(address, data, header)
        if dest is None:
            if core.closing:
                raise core.closed_error()
            dest = core.resolve(address)
            data, header = core.check(data, header)
        rc = post(core.b, 0, dest, data, len(data), header, len(header))
        if rc == _EAGAIN:  # at the high-water mark: wait in slices
            rc = _post_waiting(core, dest, data, header)
        if rc != 0:
            raise _post_refused(core, rc)

    def send(self, address: Address, data: Buffer, header: Buffer = b"") -> None:
        """Send and block until written / acknowledged; raises on failure."""
        self._core.send_wait(address, data, header)

    def send_many(self, address: Address, items: Any, header: Buffer = b"") -> ChirpFuture[None]:
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

    def reply_async(self, msg: Message, data: Buffer, header: Buffer = b"") -> ChirpFuture[None]:
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
    ) -> ChirpFuture[Message]:
        """Send and resolve to the reply (the message with the same identity).
        With a timeout the Future fails with ChirpTimeoutError when no reply came."""
        wait = None if timeout is None else _reply_timeout(timeout, self._core.cfg.timeout)
        return self._core.send(address, data, header, request=True, timeout=wait)

    def request(
        self,
        address: Address,
        data: Buffer,
        header: Buffer = b"",
        timeout: float | None = None,
    ) -> Message:
        """Send and block until the reply arrives (default timeout: 2 x config timeout)."""
        wait = _reply_timeout(timeout, self._core.cfg.timeout)
        return self._core.request_wait(address, data, header, wait)

    # -- receiving -----------------------------------------------------------

    def recv(self, timeout: float | None = None, *, copy: bool = True) -> Message:
        """The next message; raises TimeoutError (ChirpTimeoutError) if none
        arrives within timeout seconds (None: wait forever).

        copy=False, for big messages: the data is not copied out of the
        buffer it arrived in; read it through ``msg.view`` (a read-only
        memoryview).  That buffer is the application's from then on, freed
        when the last view of it is gone, whether the message was released
        or the node closed; ``msg.data`` makes a bytes copy.  Messages of up
        to CH_INLINE_SIZE (1 KiB) of header and data live in their slot,
        and are copied anyway."""
        inbox = self._core.inbox
        if (
            inbox
            and copy is True
            and (timeout is None or (type(timeout) in _TIMEOUT_TYPES and timeout >= 0))
        ):
            try:  # the batch the last wait brought: no C call, no lock
                return inbox.popleft()
            except IndexError:  # another thread took it
                pass
        return self._core.recv_many(1, _check_timeout(timeout), False, _check_copy(copy))[0]

    def recv_many(
        self, max_count: int = 64, timeout: float | None = None, *, copy: bool = True
    ) -> list[Message]:
        """Up to max_count messages at once, waiting up to timeout for the
        first (copy as for recv)."""
        if max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        return self._core.recv_many(max_count, _check_timeout(timeout), False, _check_copy(copy))

    def recv_many_data(self, max_count: int = 64, timeout: float | None = None) -> list[bytes]:
        """The data of up to max_count messages, as bytes, waiting up to
        timeout for the first: no Message objects, so no header, sender or
        identity (as a PULL socket's recv gives), and the cheapest receive
        for a stream.  Each message is released as it is handed out,
        whatever auto_release says (nothing is left to release)."""
        if max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        return self._core.recv_data(max_count, _check_timeout(timeout))

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
        return self._core.fileno()

    # -- asyncio -------------------------------------------------------------
    # On the running loop: the node's event fd wakes waiting receivers, and
    # completions come in batches (_aio.py); no thread per await.

    async def arecv(self, timeout: float | None = None, *, copy: bool = True) -> Message:
        """The next message, on asyncio; TimeoutError (ChirpTimeoutError)
        after timeout seconds (None: none), ClosedError once the node
        closes.  A cancelled arecv loses nothing: a message it had already
        taken goes back, first in line for the next receiver.  copy as for
        recv."""
        return (
            await _aio.receive(self._core, 1, _check_timeout(timeout), False, _check_copy(copy))
        )[0]

    async def arecv_many(
        self, max_count: int = 64, timeout: float | None = None, *, copy: bool = True
    ) -> list[Message]:
        """Up to max_count messages, on asyncio, waiting up to timeout for
        the first (cancelled, it loses nothing, as arecv; copy as for recv)."""
        if max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count}")
        return await _aio.receive(
            self._core, max_count, _check_timeout(timeout), False, _check_copy(copy)
        )

    def asend(self, address: Address, data: Buffer, header: Buffer = b"") -> ChirpFuture[None]:
        """send() for asyncio: queues the message now and returns a Future to
        await, which gives what send() would (None, or its error).  A
        stream may await only every Nth (they finish in order).  Cancelling
        the awaiting task leaves the message to the core: it is still
        written (synchronous: acknowledged) or fails there."""
        return self.send_async(address, data, header)

    async def arequest(
        self,
        address: Address,
        data: Buffer,
        header: Buffer = b"",
        timeout: float | None = None,
    ) -> Message:
        """request() for asyncio: the reply (TimeoutError after timeout
        seconds; None: 2 x the node's timeout).  The reply comes from the
        node's thread to the loop directly (the bridge's done fd).  A
        cancelled arequest withdraws the request: a reply that comes later
        is dropped, never received."""
        wait = _reply_timeout(timeout, self._core.cfg.timeout)
        return await _aio.request(self._core, address, data, header, wait)

    def areply(self, msg: Message, data: Buffer, header: Buffer = b"") -> ChirpFuture[None]:
        """reply() for asyncio: a Future to await, as asend's."""
        return self.reply_async(msg, data, header)

    async def aclose(self, linger: float | None = None) -> None:
        """close() without blocking the event loop (the linger runs in a
        worker thread); coroutines waiting in arecv() get ClosedError."""
        if self._core.forked:
            raise self._core.closed_error()
        await asyncio.get_running_loop().run_in_executor(None, self.close, linger)

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._core.forked:
            await self.aclose()

    def __aiter__(self) -> Node:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.arecv()
        except ClosedError:
            raise StopAsyncIteration from None

    # -- observing ---------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """The node's counters (messages and bytes sent and received,
        acknowledgements, failed sends by cause, connections opened,
        closed and refused, TLS handshakes and failures) and gauges (slots
        in use, inbox bytes): read from the core in one round trip.
        ClosedError once the node is closed."""
        return _observe.stats(self._core)

    def peers(self) -> list[PeerInfo]:
        """The remote nodes this node knows (connected, connecting, or with
        messages queued for them), one :class:`chirp.PeerInfo` each."""
        return _observe.peers(self._core)

    def events(self) -> AsyncIterator[PeerEvent]:
        """``async for ev in node.events()``: the connection events from now
        on (as on_event gets them), until the node closes.  A reader that
        falls 1024 events behind loses the newer ones, not memory."""
        return self._core.observer.events()

    # -- handlers --------------------------------------------------------------

    def serve(self, handler: Any, workers: int = 4, executor: Executor | None = None) -> None:
        """Run handler(msg) for every message on a pool of worker threads
        (or executor), until the node closes or stop() is called; blocks.
        What the handler returns (bytes, or (data, header)) is sent as the
        reply before the message is released; a handler that raises is
        logged with the message's origin, and the message released.  At
        most ``workers`` messages are in progress: the rest wait in the
        node's slots, so a slow handler holds senders back.  Ctrl-C stops
        it: what is in progress finishes first."""
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._stop.clear()
        _serve.serve(self, handler, workers, executor, self._stop)

    async def aserve(self, handler: Any, concurrency: int = 4) -> None:
        """serve() on asyncio: ``await handler(msg)`` in up to concurrency
        tasks, until the node closes or stop() is called."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self._stop.clear()
        await _serve.aserve(self, handler, concurrency, self._stop)

    def stop(self) -> None:
        """Make serve() and aserve() return (within a fraction of a second)."""
        self._stop.set()

    # -- lifecycle -------------------------------------------------------------

    def close(self, linger: float | None = None) -> None:
        """Close: no new sends are taken; queued and in-flight ones get up
        to ``linger`` seconds (None: the ``linger`` option, by default the
        timeout) to complete as they would have (written, or in synchronous
        mode acknowledged), then what is left fails with ClosedError saying
        so.  ``linger=0`` fails them at once.  Messages received and not
        released by then are not acknowledged (their synchronous senders
        get an error).  The loop thread is joined and its sockets closed
        (the fileno() fd, readable now, and the memory go with the last
        reference to the node).  Calling it again does nothing; in a
        process made by fork() from the node's, it raises ClosedError."""
        if linger is not None:
            if isinstance(linger, bool) or not isinstance(linger, (int, float)):
                raise TypeError(f"linger must be a number or None, got {type(linger).__name__}")
            if not 0 <= linger <= 86400:
                raise ValueError(f"linger must be >= 0 and <= 86400 seconds, got {linger}")
        core = self._core
        if core.forked:
            raise core.closed_error()
        if self._finalizer.detach() is not None:
            core.close(linger)

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        # In a process made by fork() the node is the parent's: leaving a
        # with block (say, on sys.exit) leaves it alone instead of raising.
        if not self._core.forked:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<chirp.Node port={self.port} identity={self.identity.hex()} {state}>"


def _post_waiting(core: Core, dest: Any, data: Buffer, header: Buffer) -> int:
    """Post again while the core says it is full (each try waits a slice,
    so Ctrl-C is seen), up to the node's timeout: the core's code, or
    CH_ETIMEDOUT."""
    deadline = time.monotonic() + core.cfg.timeout
    while True:
        if core.closing:
            return int(lib.CH_ECLOSED)
        if time.monotonic() >= deadline:
            return int(lib.CH_ETIMEDOUT)
        rc: int = post(core.b, 0, dest, data, len(data), header, len(header))
        if rc != _EAGAIN:
            return rc


def _post_refused(core: Core, rc: int) -> Exception:
    """Why post() queued nothing."""
    if rc == lib.CH_ETIMEDOUT:
        return ChirpTimeoutError(
            f"post() waited {core.cfg.timeout} s for earlier posts to be done "
            f"(over {lib.CH_POST_HWM} messages or {lib.CH_POST_HWM_BYTES >> 20} MiB of "
            "them not yet written or acknowledged): this message was not queued"
        )
    if rc == lib.CH_ECLOSED:
        return core.closed_error()
    return error_from(rc)


# The timeouts recv's inbox path takes unchecked (an int too: timeout=5
# took the checked path, five times the cost of a message from the inbox);
# bool is not among them, as type() tells it from int.
_TIMEOUT_TYPES = (float, int)


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number or None, got {type(timeout).__name__}")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout}")
    return float(timeout)


def _check_copy(copy: bool) -> bool:
    if not isinstance(copy, bool):
        raise TypeError(f"copy must be True or False, got {type(copy).__name__}")
    return copy


def _reply_timeout(timeout: float | None, node_timeout: float) -> float:
    """How long a request waits for its reply: timeout (a number > 0), or
    None: twice the node's timeout."""
    wait = _check_timeout(timeout)
    if wait is None:
        return 2 * node_timeout
    if wait == 0:
        raise ValueError("timeout must be > 0 for a request, got 0")
    return wait


__all__ = ["Node", "Message"]
