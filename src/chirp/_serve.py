"""Handlers: run a function for every message, on a pool of worker threads
(serve) or as asyncio tasks (aserve), reply with what it returns.

A message is taken only when a worker is free, and held in its slot
while the handler runs: the node's slots, not a queue of ours, bound what
is in progress, so a slow handler holds the sender back through TCP.  A
reply goes out before the message is released (the seed's rule: a
synchronous requester that sees the ACK without a reply knows something
went wrong).  A handler that raises costs that message only: the error is
logged with where the message came from, and the message is rejected
with the exception's type and text as the reason (its synchronous sender
gets RejectedError).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from .errors import ChirpTimeoutError, ClosedError

log = logging.getLogger("chirp")

SLICE = 0.2  # how often a serving loop looks at stop()


def _reply_of(result: Any) -> tuple[Any, Any] | None:
    """(data, header) to reply with, from what a handler returned."""
    if result is None:
        return None
    if isinstance(result, tuple):
        if len(result) != 2:
            raise TypeError(f"a handler returns data or (data, header), got a {len(result)}-tuple")
        return result[0], result[1]
    return result, b""


def _failed(msg: Any, exc: BaseException) -> None:
    """Log a handler's failure and reject its message with the reason."""
    log.exception(
        "handler failed on the message from %s:%d (node %s, serial %d)",
        msg.address, msg.port, msg.remote_identity.hex(), msg.serial,
    )  # fmt: skip
    try:
        msg.reject(f"{type(exc).__name__}: {exc}")
    except (ClosedError, MemoryError):
        pass  # closed: nobody to tell; no memory: it was released


def _handle(node: Any, handler: Any, msg: Any, free: threading.Semaphore) -> None:
    """One message on a worker: handle, reply, release."""
    try:
        reply = _reply_of(handler(msg))
        if reply is not None:
            node.reply(msg, reply[0], reply[1])
    except Exception as e:
        _failed(msg, e)
    finally:
        try:
            msg.release()
        finally:
            free.release()


def serve(
    node: Any,
    handler: Any,
    workers: int,
    executor: Executor | None,
    stop: threading.Event,
) -> None:
    """Node.serve: until the node closes or stop is set."""
    pool = executor if executor is not None else ThreadPoolExecutor(workers, "chirp-serve")
    free = threading.Semaphore(workers)
    try:
        while not stop.is_set():
            if not free.acquire(timeout=SLICE):
                continue
            try:
                msg = node._core.recv_many(1, SLICE, True)[0]
            except ChirpTimeoutError:
                free.release()
                continue
            except BaseException:
                free.release()
                raise
            pool.submit(_handle, node, handler, msg, free)
    except ClosedError:
        pass
    finally:  # also on Ctrl-C: what is in progress finishes, nothing else starts
        if executor is None:
            pool.shutdown(wait=True)
        else:
            for _ in range(workers):
                free.acquire()


async def _aworker(node: Any, handler: Any, stop: threading.Event) -> None:
    core = node._core
    from ._aio import receive

    while not stop.is_set():
        try:
            msg = (await receive(core, 1, SLICE, True))[0]
        except ChirpTimeoutError:
            continue
        except ClosedError:
            return
        try:
            reply = _reply_of(await handler(msg))
            if reply is not None:
                await node.areply(msg, reply[0], reply[1])
        except asyncio.CancelledError:
            msg.release()
            raise
        except Exception as e:
            _failed(msg, e)
        msg.release()


async def aserve(node: Any, handler: Any, concurrency: int, stop: threading.Event) -> None:
    """Node.aserve: concurrency tasks, until the node closes or stop is set."""
    tasks = [asyncio.ensure_future(_aworker(node, handler, stop)) for _ in range(concurrency)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
