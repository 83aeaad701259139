"""The Futures chirp's sends and requests return.

A stream of sends makes a Future per message, and most are never waited
on before they finish.  ``ChirpFuture`` is a ``concurrent.futures.Future``
that makes the Condition, waiter and callback lists a Future waits with
only when somebody waits, asks for a callback or uses
``concurrent.futures.wait()``; until then the pump finishes it with an
assignment or three, and making one costs little more than an object.

That relies on the private fields of CPython's Future (``_state``,
``_result``, ``_exception``, ``_condition``, ``_waiters``,
``_done_callbacks``).  Where a Python's Future has other fields,
``new_future`` is ``PlainChirpFuture``, a whole Future made at once; both
are tested on the running Python (tests/test_futures.py).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Generator
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING
from typing import Any, TypeVar

__all__ = ["FINISHED", "FUTURE_LOCK", "LAZY_FUTURES", "ChirpFuture", "PlainChirpFuture"]

T = TypeVar("T")

# Orders making a condition vs finishing.  Reentrant: a garbage collection
# inside a locked section may run a Node's finalizer, which finishes that
# node's Futures in the same thread.  Made anew in a forked child (a thread
# of the parent may have held it), so always looked up as FUTURE_LOCK.
FUTURE_LOCK = threading.RLock()


def after_fork() -> None:
    """In a child made by fork(): a lock nobody holds."""
    global FUTURE_LOCK
    FUTURE_LOCK = threading.RLock()


FUTURE_FIELDS = frozenset(("_condition", "_state", "_result", "_exception", "_waiters",
                           "_done_callbacks"))  # fmt: skip
# The lazy Future relies on concurrent.futures.Future's fields: on a Python
# whose Future has other fields, chirp uses the plain one.
LAZY_FUTURES = set(vars(Future())) == FUTURE_FIELDS


def _watch(fut: ChirpFuture[Any]) -> None:
    """Give a lazy Future the Condition and lists a Future waits with (on
    first use of any of them), and make the pump hand out its completion
    at once while it is pending: somebody waits or watches."""
    with FUTURE_LOCK:
        if not fut._watched:
            d = fut.__dict__
            d["_cond"] = threading.Condition()
            d["_waiter_list"] = []
            d["_callback_list"] = []
            fut._watched = True
            fut._plain = False
    ref = fut._core_ref
    core = ref() if ref is not None else None
    if core is not None and fut._state == PENDING:
        core.hurry()


def _lazy_field(key: str) -> property:
    """One of Future's _condition, _waiters, _done_callbacks, made by
    _watch when first used.  A property rather than __getattr__: a class
    with __getattr__ makes every attribute lookup on its instances slow."""

    def get(self: ChirpFuture[Any]) -> Any:
        try:
            return self.__dict__[key]
        except KeyError:
            _watch(self)
            return self.__dict__[key]

    def put(self: ChirpFuture[Any], value: Any) -> None:
        self.__dict__[key] = value

    return property(get, put)


class ChirpFuture(Future[T]):
    """A Future for a message already handed to the core: a
    ``concurrent.futures.Future`` that can also be awaited on asyncio.

    A send cannot be cancelled (the message may be on the wire); a request
    can, until its reply came: cancelling withdraws it, and a reply that
    comes later is dropped.  Until somebody waits on it,
    finishing it is an assignment."""

    _state = PENDING
    _result: Any = None
    _exception: BaseException | None = None
    _watched = False  # the Condition and lists exist: notify on finishing
    _token = 0  # a request's token: finished by its reply, not its send
    _plain = True  # nobody watches, not a request: the pump assigns its state
    _core_ref: Any = None  # weakref to the core whose pump finishes it
    _condition = _lazy_field("_cond")
    _waiters = _lazy_field("_waiter_list")
    _done_callbacks = _lazy_field("_callback_list")

    __init__ = object.__init__  # nothing to set: the class defaults hold

    def _finish(self, result: Any, exc: BaseException | None) -> None:
        """Set the outcome (the pump, or a failing call): by assignment
        when nobody watches, else the usual way (notifying waiters)."""
        with FUTURE_LOCK:
            if not self._watched:
                if self._state == PENDING:
                    self._result = result
                    self._exception = exc
                    self._state = FINISHED
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

    def _core(self) -> Any:
        ref = self._core_ref
        return ref() if ref is not None else None

    def cancel(self) -> bool:
        """Withdraw a request whose reply has not come (True); a send, or a
        request already answered, cannot be cancelled (False)."""
        core = self._core()
        if not self._token or core is None or core.forked:
            return False
        if core.pending.pop(self._token, None) is None:
            return self.cancelled()  # finished, or being finished, meanwhile
        core.withdraw(self._token)
        super().cancel()
        # Tell concurrent.futures.wait() and as_completed() too, as an
        # executor does for the work it cancels.
        self.set_running_or_notify_cancel()
        return True

    def cancelled(self) -> bool:
        """True once a request was withdrawn (see cancel)."""
        return self._state in (CANCELLED, CANCELLED_AND_NOTIFIED)

    def done(self) -> bool:
        """True once finished or cancelled (reads the state without a lock:
        it only ever changes from pending to one of those)."""
        return self._state != PENDING

    def _inherited(self) -> None:
        """A pending Future of a node this process inherited through fork():
        it would never finish here."""
        core = self._core()
        if self._state == PENDING and core is not None and core.forked:
            raise core.closed_error()

    def __await__(self) -> Generator[Any, None, T]:
        """Await it on asyncio (see _aio.await_future)."""
        if self._state == FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result  # type: ignore[no-any-return]
        from . import _aio

        return (yield from _aio.await_future(self))  # type: ignore[no-any-return]

    def result(self, timeout: float | None = None) -> T:
        """As Future.result; a finished Future answers without locking."""
        if self._state == FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result  # type: ignore[no-any-return]
        self._inherited()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """As Future.exception; a finished Future answers without locking."""
        if self._state == FINISHED:
            return self._exception
        self._inherited()
        return super().exception(timeout)


class PlainChirpFuture(ChirpFuture[T]):
    """The fallback for a Python whose Future has other fields than
    ChirpFuture expects: a whole Future, Condition made at once."""

    # Plain attributes again (Future.__init__ sets them on the instance).
    _condition = _waiters = _done_callbacks = None

    def __init__(self) -> None:
        Future.__init__(self)
        self._watched = True
        self._plain = False


new_future: type[ChirpFuture[Any]] = ChirpFuture if LAZY_FUTURES else PlainChirpFuture
# A stand-in that takes the pump's assignment for a token with no Future
# (a waited send's): see _Core._succeed.
NO_FUTURES = itertools.repeat(ChirpFuture())
