"""The pump: a daemon thread per node that turns the core's events (send
completions, replies, the close) into Future results.  It holds the core,
never the Node, so an unreferenced Node is collected and closed."""

from __future__ import annotations

import heapq
import logging
import time
from typing import Any

from . import _futures
from ._chirp import ffi, lib
from ._futures import FINISHED, NO_FUTURES
from ._limits import BATCH, SLICE_MS
from .errors import ChirpTimeoutError, errname, error_for

log = logging.getLogger("chirp")


class _PostFailures:
    """Failed posts (nobody waits for them) told on the log: the first at
    once, then at most one warning a second with how many more failed,
    so that a dead remote with thousands queued is a few lines."""

    def __init__(self) -> None:
        self.count = 0
        self.detail = ""
        self.logged_at = -1e9

    def add(self, detail: str) -> None:
        self.count += 1
        self.detail = self.detail or detail
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.count or (not force and now - self.logged_at < 1.0):
            return
        if self.count == 1:
            log.warning("a posted message failed: %s", self.detail)
        else:
            log.warning("%d posted messages failed, the first: %s", self.count, self.detail)
        self.count, self.detail, self.logged_at = 0, "", now


def run(core: Any) -> None:
    """The pump thread's body: poll events until the node is closed."""
    events = ffi.new("ch_event_t[]", BATCH)
    one = ffi.new("ch_message_t *[1]")  # a reply to release
    posts = _PostFailures()
    while True:
        wait = SLICE_MS
        if core.deadlines:
            wait = max(0, min(wait, int((core.deadlines[0][0] - time.monotonic()) * 1000)))
        n = lib.ch_bridge_poll(core.b, events, BATCH, wait)
        if n == lib.CH_ECLOSED:
            break
        if n > 0 and _dispatch(core, events, n, one, posts):
            break
        posts.flush()
        if core.deadlines:
            _expire(core)
    posts.flush(force=True)
    core.observer.close()
    # close() fails what is left too, but when it ran without waiting
    # for the pump (on this thread, or from the garbage collector) a
    # request may have been put back after it looked (succeed).
    core.fail_left()


def _dispatch(core: Any, events: Any, n: int, one: Any, posts: _PostFailures) -> bool:
    """Finish the Futures of n events; True once the node closed.  Failed
    posts (token 0: nobody waits) go to posts, for the log."""
    closed = False
    pending = core.pending
    for i in range(n):
        ev = events[i]
        if ev.type == lib.CH_EV_CLOSED:
            closed = True
            continue
        if ev.type == lib.CH_EV_PEER:
            core.observer.take(core)
            continue
        token = ev.token
        if ev.type == lib.CH_EV_REPLY:
            msg = core.make_message(ev.msg)
            one[0] = ev.msg
            lib.ch_bridge_release(core.b, one, 1)
            fut = pending.pop(token, None)
            if fut is not None:
                fut._finish(msg, None)
            continue
        status = ev.status
        if status == 0:  # tokens token .. token + count - 1 succeeded
            succeed(core, token, ev.count)
            continue
        if core.keep:
            core.keep.pop(token, None)
        detail = ffi.string(ev.detail).decode(errors="replace")
        if token == 0:
            posts.add(detail)
            continue
        fut = pending.pop(token, None)
        if fut is not None:
            fut._finish(None, error_for(errname(status), detail))
    return closed


def succeed(core: Any, first: int, count: int) -> None:
    """Finish the sends first .. first + count - 1 (not requests: they
    wait on for the reply), under one lock for the whole run."""
    pending = core.pending
    if core.keep:
        for t in range(first, first + count):
            core.keep.pop(t, None)
    slow = []
    with _futures.FUTURE_LOCK:  # looked up each time: a fork makes a new one
        # map() pops in C; a token with no Future (a waited send's)
        # yields the stand-in of NO_FUTURES, which takes the
        # assignment harmlessly.
        for fut in map(pending.pop, range(first, first + count), NO_FUTURES):
            if fut._plain:
                fut._state = FINISHED  # _result and _exception are None
            else:
                slow.append(fut)
    for fut in slow:
        if fut._token:
            pending[fut._token] = fut  # finished by its reply, not this
        else:
            fut._finish(None, None)  # somebody waits: notify them


def _expire(core: Any) -> None:
    """Fail the requests whose timeout passed (and forget their replies)."""
    now = time.monotonic()
    while True:
        with core.lock:  # senders push meanwhile
            if not core.deadlines or core.deadlines[0][0] > now:
                return
            _, token = heapq.heappop(core.deadlines)
        fut = core.pending.pop(token, None)
        if fut is None:
            continue
        lib.ch_bridge_cancel(core.b, token)
        fut._finish(None, ChirpTimeoutError("no reply within the request timeout"))
