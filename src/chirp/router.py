"""Router: the seed's synchronous middle role, ready to use.

A router receives on a synchronous node without auto-release and forwards
each message, synchronously, to one of its targets; it releases the
original only once the forward succeeded, so the producer's send succeeds
only when a worker took the message.  When a target fails (connection,
timeout) the router tries the next one it has not tried, while the
node's timeout lasts; when none takes the message, or a worker rejects
it, the router rejects the
original, so the producer gets RejectedError naming the cause.  A reply a
worker sends to a forwarded message (same identity) goes back to the
original sender before the original is released: "reply before ACK"
holds end to end.  The router holds at most its node's slots' worth of
messages and has no queue of its own.

Threads: run() is the router's one thread.  It waits on the node's
message fd and on a pipe the node's pump thread writes to when a forward
completes; it takes the completions known before it drains the messages
that have arrived, so a worker's reply (written before its ACK) is always
seen before the completion of the forward it answers.
"""

from __future__ import annotations

import itertools
import logging
import os
import select
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ChirpError, ChirpTimeoutError, ClosedError, RejectedError
from .message import Message

log = logging.getLogger("chirp")

Address = tuple[str, int]
Policy = Callable[[Message], Address]
POLICIES = ("round_robin", "fewest_inflight")
_GONE = 65536  # identities of finished forwards kept, to drop late replies
SLICE = 0.2  # how often run() looks at stop()


@dataclass
class _Forward:
    """One message on its way through the router."""

    orig: Message
    deadline: float
    tried: list[Address] = field(default_factory=list)
    reply: Any = None  # the Future of the reply sent back, if one came
    last_error: BaseException | None = None


class Router:
    """Forward every message node receives to one of targets (see the
    module's docstring).  ``policy``: ``"round_robin"``,
    ``"fewest_inflight"``, or a callable taking the Message and returning
    the target's address (e.g. chosen by header).  ``node`` must be
    synchronous with ``auto_release=False``."""

    def __init__(
        self,
        node: Any,
        targets: Sequence[Address],
        policy: str | Policy = "round_robin",
    ) -> None:
        cfg = node.config
        if not cfg.synchronous or cfg.auto_release:
            raise ValueError(
                "a router's node must be synchronous=True and auto_release=False "
                "(it releases a message only once a worker took it)"
            )
        if not targets:
            raise ValueError("a router needs at least one target")
        for t in targets:
            node._core.resolve(t)  # TypeError/ValueError naming a bad one now
        self.targets: list[Address] = [(str(t[0]), int(t[1])) for t in targets]
        if not callable(policy) and policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES} or a callable, got {policy!r}")
        self.node = node
        self.policy = policy
        self._next = itertools.count()
        self._inflight = dict.fromkeys(self.targets, 0)
        self._forwards: dict[bytes, _Forward] = {}  # forwarded identity -> forward
        # A forward's identity: a random prefix and a counter, unique
        # without a system call per message.
        self._id_prefix = os.urandom(8)
        self._ids = itertools.count()
        self._gone: OrderedDict[bytes, None] = OrderedDict()
        self._done: deque[tuple[_Forward, bytes, Any]] = deque()  # from the pump
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # the pump: "a forward completed"
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._woken = False
        self.counts = dict.fromkeys(("forwarded", "replies", "retried", "rejected"), 0)

    # -- the loop -----------------------------------------------------------

    def run(self) -> None:
        """Forward until stop(), the node's close, or Ctrl-C."""
        self._stop.clear()
        try:
            fd = self.node.fileno()
            while not self._stop.is_set():
                if not self._done:
                    select.select([fd, self._wake_r], [], [], SLICE)
                self._woken = False
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
                ready = len(self._done)  # completions known before this receive
                self._drain()
                for _ in range(ready):
                    self._finished(*self._done.popleft())
        except ClosedError:
            pass

    def stop(self) -> None:
        """Make run() return (within a fraction of a second)."""
        self._stop.set()
        self._wake()

    def close(self) -> None:
        """Free the wake-up pipe (run() must have returned)."""
        fds = getattr(self, "_wake_r", -1), getattr(self, "_wake_w", -1)
        self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __del__(self) -> None:
        self.close()

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass

    def _completed(self, item: tuple[_Forward, bytes, Any]) -> None:
        """A forward's Future finished (the pump thread)."""
        self._done.append(item)
        self._wake()

    def _drain(self) -> None:
        """Handle what has arrived: every message waiting (so that a
        worker's reply is seen before the completion it preceded)."""
        while True:
            try:
                batch = self.node.recv_many(64, timeout=0)
            except ChirpTimeoutError:
                return
            for msg in batch:
                self._arrived(msg)

    def _arrived(self, msg: Message) -> None:
        fwd = self._forwards.get(msg.identity)
        if fwd is not None:  # a worker's reply to a forwarded message
            fwd.reply = self.node.reply_async(fwd.orig, msg.data, msg.header)
            self.counts["replies"] += 1
            msg.release()
            return
        if msg.identity in self._gone:  # a late reply to a finished forward
            log.warning("router: dropped a late reply from %s:%d", msg.address, msg.port)
            msg.release()
            return
        timeout = self.node.config.timeout
        self._attempt(_Forward(msg, time.monotonic() + timeout))

    # -- forwarding ---------------------------------------------------------

    def _pick(self, fwd: _Forward) -> Address:
        if callable(self.policy):
            host, port = self.policy(fwd.orig)
            return (host, port)
        targets, tried = self.targets, fwd.tried
        if self.policy == "fewest_inflight":
            fresh = (t for t in targets if t not in tried)
            return min(fresh, key=self._inflight.__getitem__)
        start, n = next(self._next), len(targets)
        for k in range(n):  # the first untried from the turn's start
            t = targets[(start + k) % n]
            if t not in tried:
                return t
        raise AssertionError("every target was tried")  # _finished retries only while some is not

    def _attempt(self, fwd: _Forward) -> None:
        try:
            target = self._pick(fwd)
        except Exception as e:  # a policy's failure is this message's
            self._reject(fwd, f"the router's policy failed: {type(e).__name__}: {e}")
            return
        fid = self._id_prefix + next(self._ids).to_bytes(8, "big")
        fwd.tried.append(target)
        self._forwards[fid] = fwd
        self._inflight[target] = self._inflight.get(target, 0) + 1
        try:
            fut = self.node._core.send(target, fwd.orig.data, fwd.orig.header, identity=fid)
        except ChirpError as e:
            self._done.append((fwd, fid, e))
            return
        fut.add_done_callback(lambda f: self._completed((fwd, fid, f)))

    def _finished(self, fwd: _Forward, fid: bytes, outcome: Any) -> None:
        """A forward's result (on run()'s thread)."""
        self._forwards.pop(fid, None)
        self._gone[fid] = None
        if len(self._gone) > _GONE:
            self._gone.popitem(last=False)
        target = fwd.tried[-1]
        self._inflight[target] = max(0, self._inflight.get(target, 1) - 1)
        err = outcome if isinstance(outcome, BaseException) else outcome.exception()
        if err is not None and fwd.reply is not None and not isinstance(err, RejectedError):
            # The worker answered, which it does before it releases: the
            # work is done, even if its ACK never came (it closed first).
            err = None
        if err is None:
            self.counts["forwarded"] += 1
            if fwd.reply is not None:  # the reply first, then the ACK
                fwd.reply.add_done_callback(lambda _: fwd.orig.release())
            else:
                fwd.orig.release()
            return
        if isinstance(err, RejectedError):  # the worker said no: so do we
            self._reject(fwd, err.reason)
            return
        fwd.last_error = err
        untried = not callable(self.policy) and len(fwd.tried) < len(self.targets)
        if untried and time.monotonic() < fwd.deadline and not self._stop.is_set():
            self.counts["retried"] += 1
            self._attempt(fwd)
            return
        self._reject(fwd, f"no target took the message; the last, {target[0]}:{target[1]}: {err}")

    def _reject(self, fwd: _Forward, reason: str) -> None:
        self.counts["rejected"] += 1
        try:
            fwd.orig.reject(reason)
        except (ClosedError, ValueError):
            pass  # the node closed, or the message is gone with it
