"""asyncio on a node, without a thread per await or an executor hop per
message.

A Link joins one node to one event loop:

- Received messages: while a coroutine waits in arecv(), the loop watches
  the node's event fd (add_reader), and each time it turns readable takes
  what waits, a batch at a time, handing it to the waiting coroutines in
  order (the rest stays in the node's inbox for the next arecv(), which
  takes from there without waiting).  A coroutine cancelled after its
  messages were handed to it gives them back, first in line: cancelling
  never loses a message.
- Requests (arequest): announced waits of the bridge (ch_bridge_start),
  whose results the loop takes itself when the bridge's done fd turns
  readable: the reply goes from the node's thread to the coroutine with
  one wake-up, not through the pump thread.  A request given up on
  (cancelled, timed out) is abandoned: its late reply is dropped.
- Other completions (asend, areply): the pump thread finishes their
  Futures; each awaited one tells the link, which wakes the loop once per
  batch (call_soon_threadsafe) to settle every awaiting coroutine at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

from ._chirp import ffi, lib
from ._limits import BATCH
from .errors import ChirpTimeoutError, ClosedError, error_from
from .message import Message

_DETAIL = 256
_DONE = 64  # finished requests taken at once


class Link:
    """One node (its core) on one event loop; made by link()."""

    def __init__(self, core: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.core = core
        self.loop = loop
        self.fd = core.fileno()
        self.waiters: deque[tuple[asyncio.Future[Any], int, bool, bool]] = deque()
        self.reading = False
        self.lock = threading.Lock()  # settled and scheduled: any thread
        self.settled: list[tuple[Any, asyncio.Future[Any]]] = []
        self.scheduled = False
        self.waits: dict[int, tuple[asyncio.Future[Any], Any]] = {}  # announced
        self.done_fd = -1
        self.watching = False
        self.c: Any = None  # the C buffers of requests, made on first use

    # -- requests, on the loop ------------------------------------------------

    def start(self, dest: Any, data: bytes, header: bytes) -> tuple[int, asyncio.Future[Any]]:
        """Send a request whose reply the loop takes: (key, Future)."""
        c = self.c
        if c is None:
            self.done_fd = lib.ch_bridge_done_fd(self.core.b)
            if self.done_fd < 0:
                raise OSError("chirp: cannot make the fd of finished requests")
            c = self.c = (
                ffi.new("ch_wait_t *[]", _DONE),
                ffi.new("ch_message_t *[1]"),
                ffi.new("char[]", _DETAIL),
            )
        out = c[0]
        rc = lib.ch_bridge_start(self.core.b, dest, data, len(data), header, len(header), 1, out)
        if rc != 0:
            raise error_from(rc)
        key = int(ffi.cast("uintptr_t", out[0]))
        fut = self.loop.create_future()
        self.waits[key] = (fut, out[0])
        if not self.watching:
            self.loop.add_reader(self.done_fd, self.take_done)
            self.watching = True
        return key, fut

    def take_done(self) -> None:
        """The done fd is readable: settle the requests that finished."""
        core, waits = self.core, self.waits
        out, reply, detail = self.c
        n = lib.ch_bridge_done(core.b, out, _DONE)
        for i in range(n):
            entry = waits.pop(int(ffi.cast("uintptr_t", out[i])), None)
            rc = lib.ch_bridge_wait(core.b, out + i, 0, reply, detail, _DETAIL)
            result: Any = None
            if rc == 0 and reply[0] != ffi.NULL:
                result = core.make_message(reply[0])
                lib.ch_bridge_release(core.b, reply, 1)
            if entry is None or entry[0].done():
                continue  # given up on meanwhile: dropped
            if rc == 0:
                entry[0].set_result(result)
            else:
                entry[0].set_exception(error_from(rc, ffi.string(detail).decode(errors="replace")))
        if not waits:  # the coroutine woken may ask again at once: look later
            self.loop.call_soon(self.unwatch_idle)

    def abandon(self, key: int) -> None:
        """Give up on a request (cancelled, timed out): a reply that comes
        later is dropped."""
        entry = self.waits.pop(key, None)
        if entry is not None:
            lib.ch_bridge_abandon(self.core.b, entry[1])
        if not self.waits:
            self.loop.call_soon(self.unwatch_idle)

    def unwatch_idle(self) -> None:
        """Stop watching the done fd if no request waits (a watched fd
        would keep the node alive)."""
        if self.watching and not self.waits:
            self.watching = False
            try:
                self.loop.remove_reader(self.done_fd)
            except (ValueError, OSError, RuntimeError):  # the loop is gone
                pass

    # -- completions, from the pump thread --------------------------------

    def completed(self, cf: Any, af: asyncio.Future[Any]) -> None:
        """cf finished (any thread): settle af on the loop, in a batch."""
        with self.lock:
            self.settled.append((cf, af))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._settle)
        except RuntimeError:  # the loop is closed: nobody awaits any more
            pass

    def _settle(self) -> None:
        with self.lock:
            done, self.settled, self.scheduled = self.settled, [], False
        for cf, af in done:
            if af.done():
                continue
            if cf.cancelled():
                af.cancel()
            elif (exc := cf.exception(0)) is not None:
                af.set_exception(exc)
            else:
                af.set_result(cf.result(0))

    # -- receiving, on the loop --------------------------------------------

    def want(self, n: int, held: bool, copy: bool = True) -> asyncio.Future[Any]:
        """A Future of up to n messages (held: kept in their slots; copy:
        see Node.recv)."""
        fut = self.loop.create_future()
        self.waiters.append((fut, n, held, copy))
        self.deliver()
        if not fut.done() and not self.reading:
            self.loop.add_reader(self.fd, self.deliver)
            self.reading = True
        return fut

    def deliver(self) -> None:
        """Hand what waits to the waiting coroutines, in order."""
        waiters, inbox = self.waiters, self.core.inbox
        while waiters:
            fut, n, held, copy = waiters[0]
            if fut.done():  # cancelled, or timed out
                waiters.popleft()
                continue
            try:
                msgs = self.core.recv_many(max(n, BATCH), 0, held, copy)
            except ChirpTimeoutError:
                break
            except ClosedError as e:
                self.fail(e)
                return
            if len(msgs) > n:  # the rest is the next waiter's, or later
                inbox.extendleft(reversed(msgs[n:]))
                del msgs[n:]
            waiters.popleft()
            fut.set_result(msgs)
        if not waiters:
            self.stop_reading()

    def give_back(self, msgs: list[Message]) -> None:
        """Messages handed to a coroutine that was cancelled: first in line
        again, for the next receiver."""
        self.core.inbox.extendleft(reversed(msgs))
        self.loop.call_soon(self.deliver)

    def forget(self, fut: asyncio.Future[Any]) -> None:
        """A receiver that stopped waiting: out of the line, and the fd is
        no longer watched when nobody waits (a watched fd would keep the
        node alive)."""
        for i, w in enumerate(self.waiters):
            if w[0] is fut:
                del self.waiters[i]
                break
        if not self.waiters:
            self.stop_reading()

    def expire(self, fut: asyncio.Future[Any], timeout: float) -> None:
        if not fut.done():
            fut.set_exception(ChirpTimeoutError(f"no message within {timeout} s"))

    def stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            try:
                self.loop.remove_reader(self.fd)
            except (ValueError, OSError, RuntimeError):  # fd or loop gone
                pass

    def fail_soon(self, exc: BaseException) -> None:
        """fail(exc) on the loop (from any thread), if the loop still runs."""
        try:
            self.loop.call_soon_threadsafe(self.fail, exc)
        except RuntimeError:  # closed: nobody waits on it
            pass

    def fail(self, exc: BaseException) -> None:
        """The node closed: every waiting receiver gets exc."""
        while self.waiters:
            fut, _, _, _ = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)
        self.stop_reading()


def link(core: Any, loop: asyncio.AbstractEventLoop) -> Link:
    """The Link of core and loop, made on first use."""
    links = core.links
    found: Link | None = links.get(loop)
    if found is None:
        found = links[loop] = Link(core, loop)
    return found


async def receive(
    core: Any, n: int, timeout: float | None, held: bool, copy: bool = True
) -> list[Message]:
    """Up to n messages (at least one), waiting up to timeout; the messages
    of a receive that is cancelled go back, first in line."""
    if core.inbox and not held:  # what the last batch left: no waiting
        out: list[Message] = core.from_inbox(n)
        if out:
            return out
    if core.closing:
        raise core.closed_error()
    loop = asyncio.get_running_loop()
    lk = link(core, loop)
    fut = lk.want(n, held, copy)
    timer = loop.call_later(timeout, lk.expire, fut, timeout) if timeout is not None else None
    try:
        msgs: list[Message] = await fut
        return msgs
    except BaseException:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            lk.give_back(fut.result())  # handed over, then cancelled
        else:
            fut.cancel()
            lk.forget(fut)  # timed out or cancelled while it waited
        raise
    finally:
        if timer is not None:
            timer.cancel()


def _expire(fut: asyncio.Future[Any], timeout: float) -> None:
    if not fut.done():
        fut.set_exception(ChirpTimeoutError(f"no reply within {timeout} s"))


async def request(core: Any, addr: Any, data: Any, header: Any, timeout: float) -> Message:
    """Node.arequest: the reply, taken from the bridge on the loop."""
    if core.closing:
        raise core.closed_error()
    dest = core.resolve(addr)
    data, header = core.check(data, header)
    loop = asyncio.get_running_loop()
    lk = link(core, loop)
    key, fut = lk.start(dest, data, header)
    timer = loop.call_later(timeout, _expire, fut, timeout)
    try:
        reply: Message = await fut
        return reply
    except BaseException:
        lk.abandon(key)  # cancelled or timed out; a late reply is dropped
        raise
    finally:
        timer.cancel()


def await_future(cf: Any) -> Any:
    """The body of ChirpFuture.__await__: wait for cf on the running loop,
    settled by the pump through the node's link; a cancelled wait withdraws
    a request (its late reply is dropped); a send goes on in the core."""
    loop = asyncio.get_running_loop()
    core = cf._core()
    if core is None or core.forked or core.closing:
        return (yield from asyncio.wrap_future(cf).__await__())
    af = loop.create_future()
    lk = link(core, loop)
    cf.add_done_callback(lambda f: lk.completed(f, af))
    try:
        return (yield from af.__await__())
    except asyncio.CancelledError:
        if cf._token:
            cf.cancel()
        raise
