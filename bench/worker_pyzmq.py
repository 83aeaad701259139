"""The benchmark's pyzmq workers: PUSH/PULL stream, REQ/REP round trips.

zmq is imported inside each worker: without pyzmq the harness skips them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from worker_util import Deadline, emit, now, percentiles, recv_report, send_report


@contextlib.contextmanager
def _zmq_socket(kind: str, port: int | None = None, linger: int = 0, **opts: int) -> Iterator[Any]:
    """A pyzmq socket of KIND (PUSH, PULL, REQ, REP) with socket options
    OPTS (RCVTIMEO=1000, ...), bound to a random loopback port (port None,
    said as READY <port>) or connected to PORT; closed, with its context,
    on exit (a PUSH socket lingers up to LINGER ms to flush its queue)."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(getattr(zmq, kind))
    try:
        sock.setsockopt(zmq.LINGER, linger)
        for name, value in opts.items():
            sock.setsockopt(getattr(zmq, name), value)
        if port is None:
            emit(f"READY {sock.bind_to_random_port('tcp://127.0.0.1')}")
        else:
            sock.connect(f"tcp://127.0.0.1:{port}")
        yield sock
    finally:
        sock.close()
        ctx.term()


def _w_zmq_pull(spec: dict) -> dict:
    """Stream receiver (PULL)."""
    import zmq

    dl = Deadline(spec["deadline"])
    expect = spec["count"] + 1
    received = nbytes = 0
    t_first = t_last = 0.0
    # One blocking call per message with a 1 s timeout, as chirp's recv.
    with _zmq_socket("PULL", RCVTIMEO=1000) as sock:
        while received < expect and not dl.over():
            try:
                data = sock.recv()
            except zmq.Again:
                continue
            t = now()
            if not received:
                t_first = t
            t_last = t
            received += 1
            nbytes += len(data)
    return recv_report(received, nbytes, t_first, t_last)


def _w_zmq_push(spec: dict) -> dict:
    """Stream sender (PUSH), which cannot wait for delivery."""
    import zmq

    dl = Deadline(spec["deadline"])
    payload = b"x" * spec["size"]
    ok = failed = 0
    errors: list = []
    with _zmq_socket("PUSH", spec["port"], linger=2000, SNDTIMEO=10_000) as sock:
        sock.send(payload)  # warm-up (PUSH cannot wait for delivery)
        t0 = now()
        for _ in range(spec["count"]):
            try:
                sock.send(payload)
                ok += 1
            except zmq.Again:
                failed += 1
                errors.append("send timed out")
                if dl.over():
                    break
        t1 = now()
    return send_report(spec["count"], ok, failed, t0, t1, errors)


def _w_zmq_rep(spec: dict) -> dict:
    """Echo every request (REP); stop after END."""
    import zmq

    dl = Deadline(spec["deadline"])
    n = 0
    with _zmq_socket("REP", RCVTIMEO=1000) as sock:
        while not dl.over():
            try:
                data = sock.recv()
            except zmq.Again:
                continue
            sock.send(data)
            if data == b"END":
                break
            n += 1
    return {"echoed": n}


def _w_zmq_req(spec: dict) -> dict:
    """Request/reply round trips (REQ), one outstanding; END stops the echo."""
    import zmq

    dl = Deadline(spec["deadline"])
    payload = b"x" * spec["size"]
    ok = failed = 0
    errors: list = []
    lat: list[float] = []
    with _zmq_socket("REQ", spec["port"], RCVTIMEO=10_000, SNDTIMEO=10_000) as sock:
        sock.send(payload)
        sock.recv()
        t0 = now()
        for _ in range(spec["count"]):
            t = now()
            try:
                sock.send(payload)
                if sock.recv() == payload:
                    ok += 1
                else:
                    failed += 1
            except zmq.Again:
                failed += 1
                errors.append("timed out")
                break  # a REQ socket is stuck after a lost reply
            lat.append(now() - t)
            if dl.over():
                break
        t1 = now()
        try:
            sock.send(b"END")
            sock.recv()
        except zmq.ZMQError:
            pass
    r = send_report(spec["count"], ok, failed, t0, t1, errors)
    r.update(percentiles(lat))
    return r


ROLES = {
    "zmq-pull": _w_zmq_pull,
    "zmq-push": _w_zmq_push,
    "zmq-rep": _w_zmq_rep,
    "zmq-req": _w_zmq_req,
}
