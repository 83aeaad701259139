"""Scenario 8's workers: a chirp Router, sinks that read until the stream
stops, and pyzmq's forwarding device (zmq.proxy) with its sinks.

The router and the proxy run until the harness kills them; a sink reads
until nothing came for a second after the first message (each of two
sinks gets part of the stream, and neither knows which)."""

from __future__ import annotations

import threading

from worker_chirp import _chirp_node
from worker_util import Deadline, emit, now, recv_report

IDLE = 1.0  # seconds without a message that end a sink


def _run_router(spec: dict) -> dict:
    """A synchronous node routing to spec["targets"] (ports on loopback),
    until killed or the deadline."""
    import chirp

    node = _chirp_node(dict(spec, sync=True), auto_release=False)
    router = chirp.Router(node, [("127.0.0.1", p) for p in spec["targets"]])
    emit(f"READY {node.port}")
    t = threading.Thread(target=router.run, daemon=True)
    t.start()
    t.join(spec["deadline"])
    return dict(router.counts)


def _w_chirp_sink(spec: dict) -> dict:
    """An asynchronous chirp node reading until the stream stops."""
    import chirp

    dl = Deadline(spec["deadline"])
    received = nbytes = 0
    t_first = t_last = 0.0
    with _chirp_node(dict(spec, sync=False)) as node:
        emit(f"READY {node.port}")
        while not dl.over():
            try:
                msgs = node.recv_many(256, timeout=IDLE if received else 1.0)
            except chirp.ChirpTimeoutError:
                if received:
                    break
                continue
            t = now()
            if not received:
                t_first = t
            t_last = t
            received += len(msgs)
            nbytes += sum(len(m.data) for m in msgs)
    return recv_report(received, nbytes, t_first, t_last, first=0)


def _w_zmq_proxy(spec: dict) -> dict:
    """PULL (producers) -> PUSH (sinks), forwarded by zmq.proxy."""
    import zmq

    ctx = zmq.Context()
    front, back = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    for s in (front, back):
        s.setsockopt(zmq.LINGER, 0)
    fport = front.bind_to_random_port("tcp://127.0.0.1")
    bport = back.bind_to_random_port("tcp://127.0.0.1")
    emit(f"READY {fport} {bport}")
    zmq.proxy(front, back)  # until killed
    return {}


def _w_zmq_sink(spec: dict) -> dict:
    """A PULL socket connected to the proxy, reading until the stream stops."""
    import zmq

    dl = Deadline(spec["deadline"])
    received = nbytes = 0
    t_first = t_last = 0.0
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{spec['port']}")
    emit("READY 0")
    while not dl.over():
        if not sock.poll(int((IDLE if received else 1.0) * 1000)):
            if received:
                break
            continue
        data = sock.recv()
        t = now()
        if not received:
            t_first = t
        t_last = t
        received += 1
        nbytes += len(data)
    sock.close()
    ctx.term()
    return recv_report(received, nbytes, t_first, t_last, first=0)


ROLES = {
    "chirp-router": _run_router,
    "chirp-sink": _w_chirp_sink,
    "zmq-proxy": _w_zmq_proxy,
    "zmq-sink": _w_zmq_sink,
}
