"""Events, stats and peers: the Python side of the core's peer events
(CH_EV_PEER, taken by the pump thread) and of ch_bridge_query.

Each event is logged (logger ``chirp``: INFO when a connection opens or
closes as connections do, WARNING when it was refused or cut by a
failure), then given to the node's ``on_event`` callback on the pump
thread, then to every ``Node.events()`` iterator on its event loop."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from ._chirp import ffi, lib
from .errors import errname
from .events import PeerEvent, PeerInfo

log = logging.getLogger("chirp")

KINDS = {
    lib.CH_PEER_CONNECTED: "connected",
    lib.CH_PEER_DISCONNECTED: "disconnected",
    lib.CH_PEER_REFUSED: "refused",
}
REASONS: dict[int, str | None] = {
    lib.CH_REASON_NONE: None,
    lib.CH_REASON_TIMEOUT: "timeout",
    lib.CH_REASON_PEER_CLOSED: "closed_by_peer",
    lib.CH_REASON_TLS: "tls",
    lib.CH_REASON_PROTOCOL: "protocol",
    lib.CH_REASON_MSGSIZE: "message_too_large",
    lib.CH_REASON_IDLE: "idle",
    lib.CH_REASON_NODE_CLOSED: "node_closed",
    lib.CH_REASON_LIMIT: "limit",
    lib.CH_REASON_CONNECT: "connect_failed",
    lib.CH_REASON_ERROR: "error",
    lib.CH_REASON_NOMEM: "no_memory",
}
# Closes that are how connections end, not failures: logged at INFO.
_ORDINARY = frozenset(("idle", "closed_by_peer", "node_closed"))
STATS = tuple(name for name, _ in ffi.typeof("ch_stats_t").fields)
_QUEUE = 1024  # events an events() iterator holds; more are dropped
_TAKE = 64  # peer events taken from the bridge at once

OnEvent = Callable[[PeerEvent], object]


def _identity(raw: bytes) -> bytes | None:
    return raw if any(raw) else None


class Observer:
    """A node's listeners to its peer events."""

    def __init__(self, on_event: OnEvent | None) -> None:
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, got {type(on_event).__name__}")
        self.on_event = on_event
        self.lock = threading.Lock()
        self.subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]] = []
        self.closed = False
        self.buf: Any = None  # C buffer of the pump's takes, made on first use

    def take(self, core: Any) -> None:
        """A CH_EV_PEER event (the pump thread): take the peer events that
        wait, log each and hand it on."""
        buf = self.buf
        if buf is None:
            buf = self.buf = ffi.new("ch_peer_report_t[]", _TAKE)
        while (n := lib.ch_bridge_peer_events(core.b, buf, _TAKE)) > 0:
            for i in range(n):
                self.peer(core, buf[i])

    def peer(self, core: Any, ev: Any) -> None:
        """One peer event (a ch_peer_report_t): log it and hand it on."""
        p = ev.ev
        proto = p.ip_protocol
        reason = REASONS.get(p.reason, "error")
        event = PeerEvent(
            kind=KINDS.get(p.kind, "refused"),
            address=core._address(proto, ffi.buffer(p.address, 16 if proto == 6 else 4)[:]),
            port=p.port,
            identity=_identity(ffi.buffer(p.identity, 16)[:]),
            encrypted=bool(p.encrypted),
            outgoing=bool(p.outgoing),
            reason=reason,
            detail=ffi.string(ev.detail).decode(errors="replace"),
            error=errname(p.status) if p.status != 0 else None,
            dropped=ev.dropped,
        )
        _log(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # the callback's failure is not the node's
                log.exception("on_event raised for %s", event)
        with self.lock:
            subscribers = list(self.subscribers)
        for loop, queue in subscribers:
            _put_soon(loop, queue, event)

    def close(self) -> None:
        """The node closed (the pump thread): end every events() iterator."""
        with self.lock:
            self.closed = True
            subscribers, self.subscribers = self.subscribers, []
        for loop, queue in subscribers:
            _put_soon(loop, queue, None)

    async def events(self) -> AsyncIterator[PeerEvent]:
        """Node.events(): the events from now on, until the node closes."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(_QUEUE)
        sub = (loop, queue)
        with self.lock:
            if self.closed:
                return
            self.subscribers.append(sub)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            with self.lock:
                if sub in self.subscribers:
                    self.subscribers.remove(sub)


def _put_soon(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], item: Any) -> None:
    def put() -> None:
        # A reader that does not keep up loses events, not memory; the end
        # (None) always gets in.
        if queue.full():
            if item is not None:
                return
            queue.get_nowait()
        queue.put_nowait(item)

    try:
        loop.call_soon_threadsafe(put)
    except RuntimeError:  # its loop is closed: nobody reads any more
        pass


def _log(e: PeerEvent) -> None:
    where = f"{e.address}:{e.port}"
    how = ("TLS" if e.encrypted else "plaintext") + (", outgoing" if e.outgoing else ", incoming")
    if e.kind == "connected":
        log.info("connected to %s (%s)", where, how)
    elif e.kind == "disconnected" and e.reason in _ORDINARY:
        log.info("disconnected from %s (%s)", where, e.reason)
    elif e.reason == "node_closed":  # one being set up when this node closed
        log.info("%s %s (%s)", e.kind, where, e.reason)
    else:
        log.warning("%s %s (%s): %s", e.kind, where, e.reason, e.detail)
    if e.dropped:
        log.warning("%d connection events were dropped (too many waited)", e.dropped)


def stats(core: Any) -> dict[str, int]:
    """Node.stats(): the core's counters, read in one round trip."""
    st = ffi.new("ch_stats_t *")
    rc = lib.ch_bridge_query(core.b, st, ffi.NULL, 0, ffi.NULL)
    if rc != 0:
        raise core.closed_error()
    return {name: int(getattr(st, name)) for name in STATS}


def peers(core: Any) -> list[PeerInfo]:
    """Node.peers(): the remotes the node knows."""
    room = 64
    count = ffi.new("int *")
    while True:
        arr = ffi.new("ch_peer_info_t[]", room)
        if lib.ch_bridge_query(core.b, ffi.NULL, arr, room, count) != 0:
            raise core.closed_error()
        if count[0] <= room:
            break
        room = count[0] + 64  # more came meanwhile: ask again
    out = []
    for i in range(count[0]):
        p = arr[i]
        proto = p.ip_protocol
        out.append(
            PeerInfo(
                address=core._address(proto, ffi.buffer(p.address, 16 if proto == 6 else 4)[:]),
                port=p.port,
                identity=_identity(ffi.buffer(p.identity, 16)[:]),
                connected=bool(p.connected),
                encrypted=bool(p.encrypted),
                connections=p.connections,
                connected_for=p.connected_ms / 1000.0,
                inflight=p.inflight,
                queued=p.queued,
                sent=p.sent,
                received=p.received,
            )
        )
    return out
