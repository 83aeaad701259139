"""The benchmark's libchirp 1.2.1 workers: stream receiver, sender, idle node.

They run with the libchirp virtualenv's python, where libchirp imports
(inside each worker) and chirp does not.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque

from worker_util import (
    Deadline,
    emit,
    now,
    percentiles,
    raise_nofile,
    recv_report,
    send_report,
    send_window,
)


class _LC:
    """A libchirp queue node that is stopped on exit, with a watchdog."""

    def __init__(self, spec: dict) -> None:
        import libchirp
        import libchirp.queue

        self.lc = libchirp
        self.q = libchirp.queue
        self.loop = libchirp.Loop()
        config = libchirp.Config()
        config.PORT = int(spec["own_port"])
        config.SYNCHRONOUS = bool(spec.get("sync", False))
        config.DISABLE_ENCRYPTION = True
        config.DISABLE_SIGNALS = True
        config.TIMEOUT = float(spec.get("timeout", 5.0))
        if spec.get("reuse_time"):
            config.REUSE_TIME = float(spec["reuse_time"])
        self.node = libchirp.queue.Chirp(self.loop, config)

    def __enter__(self) -> _LC:
        return self

    def __exit__(self, *exc: object) -> None:
        timer = threading.Timer(10.0, lambda: os._exit(4))  # never hang on shutdown
        timer.daemon = True
        timer.start()
        try:
            self.node.stop()
        finally:
            self.loop.stop()
            timer.cancel()


def _w_lc_recv(spec: dict) -> dict:
    """Stream receiver: one blocking get() per message."""
    import queue as pyqueue

    dl = Deadline(spec["deadline"])
    expect = spec["count"] + 1
    received = nbytes = 0
    t_first = t_last = 0.0
    with _LC(spec) as lc:
        emit(f"READY {spec['own_port']}")
        while received < expect and not dl.over():
            try:
                msg = lc.node.get(timeout=dl.left())
            except pyqueue.Empty:
                continue
            t = now()
            if not received:
                t_first = t
            t_last = t
            received += 1
            nbytes += len(msg.data)
    return recv_report(received, nbytes, t_first, t_last)


def _w_lc_send(spec: dict) -> dict:
    """mode: async (a window of futures) or blocking (result() each)."""
    dl = Deadline(spec["deadline"])
    payload = b"x" * spec["size"]
    window = spec.get("window") or send_window(spec["size"])
    ok = failed = 0
    errors: list = []
    lat: list[float] = []

    host, port = spec.get("host", "127.0.0.1"), spec["port"]

    def one(lc):
        m = lc.q.Message()
        m.data = payload
        m.header = b""
        m.address = host
        m.port = port
        return lc.node.send(m)

    def settle(fut) -> tuple[int, int]:
        try:
            fut.result(timeout=60.0)
            return 1, 0
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
            return 0, 1

    with _LC(spec) as lc:
        one(lc).result(timeout=20)  # warm-up
        t0 = now()
        if spec["mode"] == "blocking":
            for _ in range(spec["count"]):
                t = now()
                o, f = settle(one(lc))
                ok, failed = ok + o, failed + f
                lat.append(now() - t)
                if dl.over():
                    break
        else:
            futs: deque = deque()
            for _ in range(spec["count"]):
                futs.append(one(lc))
                if len(futs) > window:
                    o, f = settle(futs.popleft())
                    ok, failed = ok + o, failed + f
                    if dl.over():
                        break
            while futs:
                o, f = settle(futs.popleft())
                ok, failed = ok + o, failed + f
        t1 = now()
    r = send_report(spec["count"], ok, failed, t0, t1, errors)
    r.update(percentiles(lat))
    return r


def _w_idle_libchirp(spec: dict) -> dict:
    """A libchirp node that only accepts connections; lives until stdin closes."""
    nofile = raise_nofile(spec.get("nofile", 4096))
    spec = dict(spec, reuse_time=3600.0, timeout=60.0)
    with _LC(spec):
        emit(f"READY {spec['own_port']}")
        sys.stdin.read()
    return {"nofile": nofile}


ROLES = {
    "lc-recv": _w_lc_recv,
    "lc-send": _w_lc_send,
    "lc-idle": _w_idle_libchirp,
}
