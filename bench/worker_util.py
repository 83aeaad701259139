"""What the benchmark's worker processes and its harness share.

Standard library only: the libchirp workers import this module with the
libchirp virtualenv's python, which has neither chirp nor pyzmq.
"""

from __future__ import annotations

import json
import sys
import time

KIB = 1024
MIB = 1024 * 1024


def now() -> float:
    """The benchmark's clock, in seconds."""
    return time.monotonic()  # CLOCK_MONOTONIC: comparable across processes


def percentiles(samples: list[float]) -> dict:
    """p50/p99 in microseconds of durations in seconds."""
    if not samples:
        return {}
    s = sorted(samples)

    def pick(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] * 1e6

    return {"p50_us": pick(0.50), "p99_us": pick(0.99)}


def send_window(size: int) -> int:
    """Messages a sender keeps queued at once (bounds the sender's memory)."""
    return max(16, min(10_000, (32 * MIB) // max(1, size)))


def raise_nofile(want: int) -> int:
    """Raise this process's open-file limit toward WANT (the memory scenario
    holds a thousand sockets); the soft limit now in force, or -1."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        return -1


def emit(kind: str, payload: object = None) -> None:
    """One protocol line on stdout (KIND, then PAYLOAD as JSON), flushed at
    once: the harness waits for it."""
    if payload is None:
        sys.stdout.write(kind + "\n")
    else:
        sys.stdout.write(kind + " " + json.dumps(payload) + "\n")
    sys.stdout.flush()


class Deadline:
    """The end of a worker's time: every loop of a worker is bounded by it."""

    def __init__(self, seconds: float) -> None:
        self.end = now() + seconds

    def left(self, cap: float = 1.0) -> float:
        """Seconds left, at most CAP (a timeout for one blocking call)."""
        return max(0.0, min(cap, self.end - now()))

    def over(self) -> bool:
        """True once the time is up."""
        return now() >= self.end


def recv_report(received: int, nbytes: int, t_first: float, t_last: float, first: int = 1) -> dict:
    """Rate over the messages after the first call's (first of them came
    at t_first, so they carry no time)."""
    dt = t_last - t_first
    return {
        "received": received,
        "bytes": nbytes,
        "t_first": t_first,
        "t_last": t_last,
        "rate": (received - first) / dt if received > first and dt > 0 else 0.0,
    }


def send_report(count: int, ok: int, failed: int, t0: float, t1: float, errors: list) -> dict:
    """A sender's result: the rate of acknowledged (ok) sends from t0 to t1."""
    dt = t1 - t0
    return {
        "count": count,
        "ok": ok,
        "failed": failed,
        "t_start": t0,
        "t_end": t1,
        "rate": ok / dt if dt > 0 else 0.0,
        "errors": errors[:3],
    }
