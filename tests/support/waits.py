"""Bounded waits: nothing in the tests waits without a limit.

This module does not import chirp.
"""

from __future__ import annotations

import threading
import time


def wait_until(pred, timeout: float, what="the condition", interval: float = 0.02):
    """Poll pred() until it returns something true, and return that;
    AssertionError naming `what` (a string, or a function that makes one
    then) once timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            what = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_futures(futs, timeout: float) -> list:
    """Wait (bounded) until every future is done; returns those not done."""
    deadline = time.monotonic() + timeout
    for f in futs:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            f.exception(timeout=left)
        except Exception:  # concurrent.futures.TimeoutError
            pass
    return [f for f in futs if not f.done()]


def run_in_thread(fn, *args, **kw):
    """Start fn(*args, **kw) in a daemon thread; returns (thread, box) where
    box gets 'result' or 'error', and 'end' (a monotonic time) once it ends."""
    box = {}

    def target():
        try:
            box["result"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: B902 - reported to the test
            box["error"] = exc
        finally:
            box["end"] = time.monotonic()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box
