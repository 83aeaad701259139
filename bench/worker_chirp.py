"""The benchmark's chirp workers: stream, echo, request, soak, idle node.

chirp is imported inside each worker (this module is imported by every
worker process, the libchirp ones too); it comes from the installed package.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from concurrent.futures import TimeoutError as FutureTimeout
from types import SimpleNamespace

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


def _chirp_node(spec: dict, **extra: object):
    """A chirp Node as SPEC says: plaintext or TLS (cert), sync, timeout,
    slots (max_slots and max_inflight)."""
    import chirp

    opts: dict = {"port": 0, "bind_v6": "", "synchronous": bool(spec.get("sync", False))}
    if spec.get("cert"):
        opts["cert_chain_pem"] = spec["cert"]
        opts["dh_params_pem"] = spec["dh"]
    else:
        opts["disable_encryption"] = True
    if spec.get("timeout"):
        opts["timeout"] = float(spec["timeout"])
    if spec.get("identity"):
        opts["identity"] = bytes.fromhex(spec["identity"])
    if spec.get("slots"):  # the window of an acknowledged stream
        opts["max_slots"] = opts["max_inflight"] = int(spec["slots"])
    if "max_peer_connections" in spec:  # the harness's idle connections
        opts["max_peer_connections"] = int(spec["max_peer_connections"])
        raise_nofile(4096)
    opts.update(extra)
    return chirp.Node(**opts)


def _settle(fut, errors: list, timeout: float = 60.0) -> bool:
    """Wait for one send Future (usually long done): True when it succeeded.
    As cheap as the API allows: the harness must not dominate the sender."""
    try:
        e = fut.exception(timeout=timeout)
    except FutureTimeout:
        errors.append(f"send not finished within {timeout} s")
        return False
    if e is None:
        return True
    errors.append(repr(e))
    return False


def _chirp_send_batch(node, addr, items: list):
    """The batch send call, isolated: node.send_many() returned a list of
    Futures at first and one Future for the whole batch now;
    _chirp_batch_wait handles either."""
    return node.send_many(addr, items)


def _chirp_batch_wait(handle, n: int, timeout: float) -> tuple[int, int, list]:
    """Wait for what _chirp_send_batch returned for n messages:
    (ok, failed, errors)."""
    errors: list = []
    if hasattr(handle, "exception"):  # one Future for the batch
        if _settle(handle, errors, timeout):
            return n, 0, errors
        return 0, n, errors  # the error says how many failed; count all
    # One Future per message, one at a time (concurrent.futures.wait()
    # installs a waiter on every Future, which costs more than the sends).
    ok = failed = 0
    end = now() + timeout
    for f in handle:
        if _settle(f, errors, max(0.0, end - now()) if not f.done() else 0.0):
            ok += 1
        else:
            failed += 1
    return ok, failed, errors[:3]


def _w_chirp_recv(spec: dict) -> dict:
    """Stream receiver; the plain loop mirrors _w_zmq_pull's (one blocking
    call per message with a fixed 1 s timeout), the batch loop takes up to
    spec["batch"] messages per call (spec["data_only"]: recv_many_data).
    spec["copy"] False: recv(copy=False), the data read through its view
    (no copy out of the receive buffer)."""
    import chirp

    dl = Deadline(spec["deadline"])
    expect = spec["count"] + 1
    batch = spec.get("batch", 0)
    received = nbytes = first = 0
    t_first = t_last = 0.0
    with _chirp_node(spec) as node:
        emit(f"READY {node.port}")
        if not batch:
            recv = node.recv
            if not spec.get("copy", True):

                def recv(timeout: float, _recv=node.recv) -> SimpleNamespace:
                    """The data as its view: len() of it copies nothing."""
                    return SimpleNamespace(data=_recv(timeout=timeout, copy=False).view)

            while received < expect and not dl.over():
                try:
                    msg = recv(timeout=1.0)
                except chirp.ChirpTimeoutError:
                    continue
                t = now()
                if not received:
                    t_first, first = t, 1
                t_last = t
                received += 1
                nbytes += len(msg.data)
        data_only = spec.get("data_only", False)
        while batch and received < expect and not dl.over():
            try:
                if data_only:
                    msgs = node.recv_many_data(batch, timeout=1.0)
                else:
                    msgs = node.recv_many(batch, timeout=1.0)
            except chirp.ChirpTimeoutError:
                continue
            t = now()
            if not received:
                t_first, first = t, len(msgs)
            t_last = t
            received += len(msgs)
            if data_only:
                nbytes += sum(map(len, msgs))
                continue
            for m in msgs:
                nbytes += len(m.data)
    return recv_report(received, nbytes, t_first, t_last, first)


def _w_chirp_send(spec: dict) -> dict:
    """Stream sender.  mode: async (send_async, a window of futures), post
    (post(), no Future: the sender then waits until the node wrote them
    all), batch (send_many in chunks), blocking (send() per message,
    latencies)."""
    dl = Deadline(spec["deadline"])
    addr = (spec.get("host", "127.0.0.1"), spec["port"])
    size, count, mode = spec["size"], spec["count"], spec["mode"]
    payload = b"x" * size
    window = spec.get("window") or send_window(size)
    ok = failed = 0
    errors: list = []
    lat: list[float] = []
    with _chirp_node(spec) as node:
        node.send(addr, payload)  # warm-up: the connection is up after it
        t0 = now()
        if mode == "blocking":
            for _ in range(count):
                t = now()
                try:
                    node.send(addr, payload)
                    ok += 1
                except Exception as e:  # noqa: BLE001 - counted and reported
                    failed += 1
                    errors.append(repr(e))
                lat.append(now() - t)
                if dl.over():
                    break
        elif mode == "post":
            post = node.post
            for _ in range(count):
                post(addr, payload)
            base_sent = 1  # the warm-up
            while not dl.over():
                st = node.stats()
                if st["messages_sent"] + st["sends_failed"] >= base_sent + count:
                    break
                time.sleep(0.001)
            st = node.stats()
            failed = st["sends_failed"]
            ok = st["messages_sent"] - base_sent
            if failed:
                errors.append(f"{failed} posted messages failed (see the log)")
        elif mode == "batch":
            # Big messages: small batches, so several are in flight at once
            # (a batch's one Future resolves only when all of it is written).
            chunk = max(1, min(spec.get("chunk", 256), window // 8))
            pending: deque = deque()
            items = [payload] * chunk
            sent = 0
            while sent < count and not dl.over():
                n = min(chunk, count - sent)
                h = _chirp_send_batch(node, addr, items if n == chunk else items[:n])
                pending.append((h, n))
                sent += n
                while len(pending) * chunk > window:
                    o, f, e = _chirp_batch_wait(*pending.popleft(), dl.left(60))
                    ok, failed = ok + o, failed + f
                    errors += e
            while pending:
                o, f, e = _chirp_batch_wait(*pending.popleft(), max(0.1, dl.left(60)))
                ok, failed = ok + o, failed + f
                errors += e
        else:
            futs: deque = deque()
            send_async = node.send_async
            popleft = futs.popleft
            for _ in range(count):
                futs.append(send_async(addr, payload))
                if len(futs) > window:
                    # _settle inlined: the oldest is usually long done, and
                    # a call per message shows in the sender's rate.
                    try:
                        e = popleft().exception(60.0)
                    except FutureTimeout:
                        e = "send not finished within 60.0 s"
                    if e is None:
                        ok += 1
                    else:
                        failed += 1
                        errors.append(e if isinstance(e, str) else repr(e))
                        if dl.over():
                            break
            o, f, e = _chirp_batch_wait(list(futs), len(futs), max(0.1, dl.left(60)))
            ok, failed = ok + o, failed + f
            errors += e
        t1 = now()
    r = send_report(count, ok, failed, t0, t1, errors)
    r.update(percentiles(lat))
    return r


def _w_chirp_echo(spec: dict) -> dict:
    """Reply to every message with its data; stop on header END."""
    import chirp

    dl = Deadline(spec["deadline"])
    n = 0
    with _chirp_node(spec) as node:
        emit(f"READY {node.port}")
        while not dl.over():
            try:
                msgs = node.recv_many(64, timeout=dl.left())
            except chirp.ChirpTimeoutError:
                continue
            for m in msgs:
                if m.header == b"END":
                    return {"echoed": n}
                node.reply(m, m.data)
                n += 1
    return {"echoed": n, "error": "deadline"}


def _w_chirp_request(spec: dict) -> dict:
    """Request/reply round trips, one outstanding; END stops the echo."""
    dl = Deadline(spec["deadline"])
    addr = (spec.get("host", "127.0.0.1"), spec["port"])
    payload = b"x" * spec["size"]
    ok = failed = 0
    errors: list = []
    lat: list[float] = []
    with _chirp_node(spec) as node:
        node.request(addr, payload, timeout=10)  # warm-up
        t0 = now()
        for _ in range(spec["count"]):
            t = now()
            try:
                answer = node.request(addr, payload, timeout=10)
                if answer.data == payload:
                    ok += 1
                else:
                    failed += 1
                    errors.append("reply data differs")
            except Exception as e:  # noqa: BLE001
                failed += 1
                errors.append(repr(e))
            lat.append(now() - t)
            if dl.over():
                break
        t1 = now()
        try:
            node.send(addr, b"", header=b"END")
        except Exception:  # noqa: BLE001 - the echo process is killed anyway
            pass
    r = send_report(spec["count"], ok, failed, t0, t1, errors)
    r.update(percentiles(lat))
    return r


def _w_chirp_soak_recv(spec: dict) -> dict:
    """Receive until a message with header END (data: how many were sent)."""
    import chirp

    dl = Deadline(spec["deadline"])
    received = nbytes = 0
    sent = -1
    t_first = t_last = 0.0
    with _chirp_node(spec) as node:
        emit(f"READY {node.port}")
        while not dl.over():
            try:
                msgs = node.recv_many(256, timeout=dl.left())
            except chirp.ChirpTimeoutError:
                continue
            t_last = now()
            if not received:
                t_first = t_last
            for m in msgs:
                if m.header == b"END":
                    sent = int(m.data)
                    continue
                received += 1
                nbytes += len(m.data)
            if sent >= 0:
                break
    r = recv_report(received, nbytes, t_first, t_last)
    r["sent"] = sent
    return r


def _w_chirp_soak_send(spec: dict) -> dict:
    """Asynchronous stream for spec["seconds"] seconds, then END."""
    dl = Deadline(spec["deadline"])
    addr = ("127.0.0.1", spec["port"])
    payload = b"x" * spec["size"]
    window = send_window(spec["size"])
    ok = failed = sent = 0
    errors: list = []
    with _chirp_node(spec) as node:
        node.send(addr, payload, header=b"")
        sent = 1
        emit("STARTED")
        t0 = now()
        stop = t0 + spec["seconds"]
        futs: deque = deque()
        while now() < stop and not dl.over():
            for _ in range(256):
                futs.append(node.send_async(addr, payload))
            sent += 256
            while len(futs) > window:
                if _settle(futs.popleft(), errors):
                    ok += 1
                else:
                    failed += 1
        o, f, e = _chirp_batch_wait(list(futs), len(futs), max(0.1, dl.left(60)))
        ok, failed = ok + o, failed + f
        errors += e
        t1 = now()
        node.send(addr, str(sent).encode(), header=b"END")
    return send_report(sent - 1, ok, failed, t0, t1, errors)


def _w_idle_chirp(spec: dict) -> dict:
    """A node that only accepts connections; lives until stdin closes.  No
    cap on connections from one address (max_peer_connections, 256 by
    default): the harness opens them all from 127.0.0.1."""
    nofile = raise_nofile(spec.get("nofile", 4096))
    opts = {"reuse_time": 3600.0, "timeout": 60.0, "max_peer_connections": 0}
    with _chirp_node(spec, **opts) as node:
        emit(f"READY {node.port}")
        sys.stdin.read()  # the harness closes stdin to end us
    return {"nofile": nofile}


ROLES = {
    "chirp-recv": _w_chirp_recv,
    "chirp-send": _w_chirp_send,
    "chirp-echo": _w_chirp_echo,
    "chirp-request": _w_chirp_request,
    "chirp-soak-recv": _w_chirp_soak_recv,
    "chirp-soak-send": _w_chirp_soak_send,
    "chirp-idle": _w_idle_chirp,
}
