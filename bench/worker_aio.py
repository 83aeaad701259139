"""The benchmark's asyncio and handler workers (scenario 7): chirp's
asend / async for / arequest beside zmq.asyncio PUSH/PULL and REQ/REP, and
echo servers (serve() on 4 workers, aserve(), the blocking loop) for a
pipelined requester.

Each asyncio worker runs on a new event loop (spec["loop"]: "asyncio", the
default, or "uvloop"); its whole run is bounded by spec["deadline"].
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from worker_util import Deadline, emit, now, percentiles, recv_report, send_report, send_window


def _run(spec: dict, coro_fn) -> dict:
    """coro_fn() on a loop of spec's kind, bounded by the deadline."""
    if spec.get("loop") == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(), spec["deadline"]))
    finally:
        loop.close()


def _node(spec: dict):
    from worker_chirp import _chirp_node

    return _chirp_node(spec)


# -- streams -------------------------------------------------------------------


def _w_chirp_arecv(spec: dict) -> dict:
    """Stream receiver: ``async for msg in node``."""
    expect = spec["count"] + 1

    async def main() -> dict:
        received = nbytes = 0
        t_first = t_last = 0.0
        async with _node(spec) as node:
            emit(f"READY {node.port}")
            async for msg in node:
                t = now()
                if not received:
                    t_first = t
                t_last = t
                received += 1
                nbytes += len(msg.data)
                if received == expect:
                    break
        return recv_report(received, nbytes, t_first, t_last)

    return _run(spec, main)


def _w_chirp_asend(spec: dict) -> dict:
    """Stream sender: asend per message; mode "window" awaits the oldest
    once more than a window are out (usually done by then: no suspension),
    mode "each" awaits every asend."""
    addr = (spec.get("host", "127.0.0.1"), spec["port"])
    payload = b"x" * spec["size"]
    count, each = spec["count"], spec.get("mode") == "each"
    window = send_window(spec["size"])

    async def main() -> dict:
        ok = failed = 0
        errors: list = []
        async with _node(spec) as node:
            await node.asend(addr, payload)  # warm-up: the connection is up
            t0 = now()
            asend = node.asend
            if each:
                for _ in range(count):
                    try:
                        await asend(addr, payload)
                        ok += 1
                    except Exception as e:  # noqa: BLE001 - counted and reported
                        failed += 1
                        errors.append(repr(e))
            else:
                futs: deque = deque()
                for _ in range(count):
                    futs.append(asend(addr, payload))
                    if len(futs) > window:
                        try:
                            await futs.popleft()
                            ok += 1
                        except Exception as e:  # noqa: BLE001
                            failed += 1
                            errors.append(repr(e))
                for f in futs:
                    try:
                        await f
                        ok += 1
                    except Exception as e:  # noqa: BLE001
                        failed += 1
                        errors.append(repr(e))
            t1 = now()
        return send_report(count, ok, failed, t0, t1, errors)

    return _run(spec, main)


def _zmq_socket(kind: str, port: int | None):
    """A zmq.asyncio socket of kind, bound (port None, said as READY) or
    connected; the caller closes it and its context."""
    import zmq
    import zmq.asyncio

    ctx = zmq.asyncio.Context()
    sock = ctx.socket(getattr(zmq, kind))
    sock.setsockopt(zmq.LINGER, 2000)
    if port is None:
        emit(f"READY {sock.bind_to_random_port('tcp://127.0.0.1')}")
    else:
        sock.connect(f"tcp://127.0.0.1:{port}")
    return ctx, sock


def _w_zmq_apull(spec: dict) -> dict:
    """Stream receiver: ``await sock.recv()`` (zmq.asyncio PULL)."""
    expect = spec["count"] + 1

    async def main() -> dict:
        received = nbytes = 0
        t_first = t_last = 0.0
        ctx, sock = _zmq_socket("PULL", None)
        try:
            while received < expect:
                data = await sock.recv()
                t = now()
                if not received:
                    t_first = t
                t_last = t
                received += 1
                nbytes += len(data)
        finally:
            sock.close()
            ctx.term()
        return recv_report(received, nbytes, t_first, t_last)

    return _run(spec, main)


def _w_zmq_apush(spec: dict) -> dict:
    """Stream sender: ``await sock.send()`` (zmq.asyncio PUSH)."""
    payload = b"x" * spec["size"]

    async def main() -> dict:
        ctx, sock = _zmq_socket("PUSH", spec["port"])
        try:
            await sock.send(payload)  # warm-up
            t0 = now()
            for _ in range(spec["count"]):
                await sock.send(payload)
            t1 = now()
        finally:
            sock.close()
            ctx.term()
        return send_report(spec["count"], spec["count"], 0, t0, t1, [])

    return _run(spec, main)


# -- request/reply -------------------------------------------------------------


def _w_chirp_arequest(spec: dict) -> dict:
    """Round trips from asyncio, one outstanding: ``await node.arequest``;
    END stops the echo."""
    addr = (spec.get("host", "127.0.0.1"), spec["port"])
    payload = b"x" * spec["size"]

    async def main() -> dict:
        ok = failed = 0
        errors: list = []
        lat: list[float] = []
        async with _node(spec) as node:
            await node.arequest(addr, payload, timeout=10)  # warm-up
            t0 = now()
            for _ in range(spec["count"]):
                t = now()
                try:
                    ans = await node.arequest(addr, payload, timeout=10)
                    if ans.data == payload:
                        ok += 1
                    else:
                        failed += 1
                except Exception as e:  # noqa: BLE001
                    failed += 1
                    errors.append(repr(e))
                lat.append(now() - t)
            t1 = now()
            await node.asend(addr, b"", header=b"END")
        r = send_report(spec["count"], ok, failed, t0, t1, errors)
        r.update(percentiles(lat))
        return r

    return _run(spec, main)


def _w_zmq_areq(spec: dict) -> dict:
    """Round trips from asyncio, one outstanding (zmq.asyncio REQ)."""
    payload = b"x" * spec["size"]

    async def main() -> dict:
        ok = 0
        lat: list[float] = []
        ctx, sock = _zmq_socket("REQ", spec["port"])
        try:
            await sock.send(payload)
            await sock.recv()
            t0 = now()
            for _ in range(spec["count"]):
                t = now()
                await sock.send(payload)
                if await sock.recv() == payload:
                    ok += 1
                lat.append(now() - t)
            t1 = now()
            await sock.send(b"END")
            await sock.recv()
        finally:
            sock.close()
            ctx.term()
        r = send_report(spec["count"], ok, spec["count"] - ok, t0, t1, [])
        r.update(percentiles(lat))
        return r

    return _run(spec, main)


# -- handlers ------------------------------------------------------------------


def _w_chirp_serve(spec: dict) -> dict:
    """An echo server: node.serve(handler, workers) (spec["workers"]) or,
    with spec["aserve"], await node.aserve(handler, concurrency); a message
    with header END stops it."""
    workers = spec.get("workers", 4)
    n = [0]

    def handler(msg):
        if msg.header == b"END":
            node.stop()
            return None
        n[0] += 1
        return msg.data

    node = _node(spec)
    with node:
        emit(f"READY {node.port}")
        if spec.get("aserve"):

            async def ahandler(msg):
                return handler(msg)

            _run(spec, lambda: node.aserve(ahandler, concurrency=workers))
        else:
            timer = threading.Timer(spec["deadline"], node.stop)
            timer.daemon = True
            timer.start()
            node.serve(handler, workers=workers)
    return {"echoed": n[0]}


def _w_chirp_request_pipelined(spec: dict) -> dict:
    """Request/reply with spec["window"] requests outstanding
    (request_async, blocking API); END stops the server."""
    dl = Deadline(spec["deadline"])
    addr = (spec.get("host", "127.0.0.1"), spec["port"])
    payload = b"x" * spec["size"]
    window = spec.get("window", 64)
    ok = failed = 0
    errors: list = []
    from worker_chirp import _chirp_node

    with _chirp_node(spec) as node:
        node.request(addr, payload, timeout=10)  # warm-up
        t0 = now()
        futs: deque = deque()
        for _ in range(spec["count"]):
            futs.append(node.request_async(addr, payload, timeout=30))
            while len(futs) >= window or (futs and dl.over()):
                try:
                    ans = futs.popleft().result(30)
                    ok += ans.data == payload
                except Exception as e:  # noqa: BLE001
                    failed += 1
                    errors.append(repr(e))
        for f in futs:
            try:
                ok += f.result(30).data == payload
            except Exception as e:  # noqa: BLE001
                failed += 1
                errors.append(repr(e))
        t1 = now()
        node.send(addr, b"", header=b"END")
    return send_report(spec["count"], ok, failed, t0, t1, errors)


ROLES = {
    "chirp-arecv": _w_chirp_arecv,
    "chirp-asend": _w_chirp_asend,
    "zmq-apull": _w_zmq_apull,
    "zmq-apush": _w_zmq_apush,
    "chirp-arequest": _w_chirp_arequest,
    "zmq-areq": _w_zmq_areq,
    "chirp-serve": _w_chirp_serve,
    "chirp-request-pipelined": _w_chirp_request_pipelined,
}
