"""chirp's benchmark harness: ``python -m chirp bench``.

Every measurement runs the sender and the receiver in separate processes on
loopback, chirp right beside a peer system (pyzmq, libchirp 1.2.1) in the
same run, and prints one table.  The worker side of every process lives in
this module too (``python -m chirp.bench worker SPEC``); the libchirp
workers run this very file with the libchirp virtualenv's python, so the
module imports nothing but the standard library at the top (chirp, zmq and
libchirp are imported inside the worker functions that need them).

Scenarios (``--scenario N``, repeatable; default all):

1. asynchronous stream, 64 B / 1 KiB / 1 MiB: chirp, chirp's batch API,
   pyzmq PUSH/PULL, libchirp (asynchronous).  Rate measured at the receiver.
2. synchronous (acknowledged) stream, 64 B: chirp pipelined futures and
   blocking send(), libchirp synchronous (pipelined / blocking), pyzmq
   REQ/REP.  Rate measured at the sender (every message acknowledged).
3. request/reply round trips, 64 B, one outstanding: chirp request() against
   an echo process, pyzmq REQ/REP; p50/p99 latency.
4. TLS stream 64 B and 1 MiB beside plaintext (chirp only), in a network
   namespace of its own (``unshare -n``), address 198.18.0.1.
5. the C core alone: examples/ping.c (one process) and bench/c_stream.c
   (two processes), built from the source tree.
6. memory: RSS of a node holding 1,000 idle connections; RSS across a
   stream of --soak-seconds.

Nothing here asserts speed; the numbers are for reading.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

TLS_ADDRESS = "198.18.0.1"
KIB = 1024
MIB = 1024 * 1024

# ---------------------------------------------------------------------------
# small helpers shared by both sides


def _now() -> float:
    return time.monotonic()  # CLOCK_MONOTONIC: comparable across processes


def _percentiles(samples: list[float]) -> dict:
    """p50/p99 in microseconds of durations in seconds."""
    if not samples:
        return {}
    s = sorted(samples)

    def pick(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] * 1e6

    return {"p50_us": pick(0.50), "p99_us": pick(0.99)}


def _window(size: int) -> int:
    """Messages a sender keeps queued at once (bounds the sender's memory)."""
    return max(16, min(10_000, (32 * MIB) // max(1, size)))


def _raise_nofile(want: int) -> int:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        return -1


def _emit(kind: str, payload: object = None) -> None:
    if payload is None:
        sys.stdout.write(kind + "\n")
    else:
        sys.stdout.write(kind + " " + json.dumps(payload) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# workers: one role per process, driven by a JSON spec on the command line
#
# Protocol on stdout: listeners print "READY <port>" once they listen; every
# worker ends with one "RESULT <json>" line.  Stream senders send one warm-up
# message first (and wait for it where the API allows), then "count"
# messages; stream receivers expect count + 1 and measure from the first
# message to the last.  Every loop is bounded by spec["deadline"] seconds.


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = _now() + seconds

    def left(self, cap: float = 1.0) -> float:
        return max(0.0, min(cap, self.end - _now()))

    def over(self) -> bool:
        return _now() >= self.end


def _recv_report(received: int, nbytes: int, t_first: float, t_last: float, first: int = 1) -> dict:
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


def _send_report(count: int, ok: int, failed: int, t0: float, t1: float, errors: list) -> dict:
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


# -- chirp ------------------------------------------------------------------


def _chirp_node(spec: dict, **extra: object):
    import chirp

    opts: dict = {"port": 0, "bind_v6": "", "synchronous": bool(spec.get("sync", False))}
    if spec.get("cert"):
        opts["cert_chain_pem"] = spec["cert"]
        opts["dh_params_pem"] = spec["dh"]
    else:
        opts["disable_encryption"] = True
    if spec.get("timeout"):
        opts["timeout"] = float(spec["timeout"])
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
    end = _now() + timeout
    for f in handle:
        if _settle(f, errors, max(0.0, end - _now()) if not f.done() else 0.0):
            ok += 1
        else:
            failed += 1
    return ok, failed, errors[:3]


def _w_chirp_recv(spec: dict) -> dict:
    """Stream receiver; the plain loop mirrors _w_zmq_pull's (one blocking
    call per message with a fixed 1 s timeout), the batch loop takes up to
    spec["batch"] messages per call."""
    import chirp

    dl = _Deadline(spec["deadline"])
    expect = spec["count"] + 1
    batch = spec.get("batch", 0)
    received = nbytes = first = 0
    t_first = t_last = 0.0
    with _chirp_node(spec) as node:
        _emit(f"READY {node.port}")
        if not batch:
            recv = node.recv
            while received < expect and not dl.over():
                try:
                    msg = recv(timeout=1.0)
                except chirp.ChirpTimeoutError:
                    continue
                t = _now()
                if not received:
                    t_first, first = t, 1
                t_last = t
                received += 1
                nbytes += len(msg.data)
        while batch and received < expect and not dl.over():
            try:
                msgs = node.recv_many(batch, timeout=1.0)
            except chirp.ChirpTimeoutError:
                continue
            t = _now()
            if not received:
                t_first, first = t, len(msgs)
            t_last = t
            received += len(msgs)
            for m in msgs:
                nbytes += len(m.data)
    return _recv_report(received, nbytes, t_first, t_last, first)


def _w_chirp_send(spec: dict) -> dict:
    """Stream sender.  mode: async (send_async, a window of futures), batch
    (send_many in chunks), blocking (send() per message, latencies)."""
    dl = _Deadline(spec["deadline"])
    addr = (spec.get("host", "127.0.0.1"), spec["port"])
    size, count, mode = spec["size"], spec["count"], spec["mode"]
    payload = b"x" * size
    window = spec.get("window") or _window(size)
    ok = failed = 0
    errors: list = []
    lat: list[float] = []
    with _chirp_node(spec) as node:
        node.send(addr, payload)  # warm-up: the connection is up after it
        t0 = _now()
        if mode == "blocking":
            for _ in range(count):
                t = _now()
                try:
                    node.send(addr, payload)
                    ok += 1
                except Exception as e:  # noqa: BLE001 - counted and reported
                    failed += 1
                    errors.append(repr(e))
                lat.append(_now() - t)
                if dl.over():
                    break
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
        t1 = _now()
    r = _send_report(count, ok, failed, t0, t1, errors)
    r.update(_percentiles(lat))
    return r


def _w_chirp_echo(spec: dict) -> dict:
    """Reply to every message with its data; stop on header END."""
    import chirp

    dl = _Deadline(spec["deadline"])
    n = 0
    with _chirp_node(spec) as node:
        _emit(f"READY {node.port}")
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
    dl = _Deadline(spec["deadline"])
    addr = (spec.get("host", "127.0.0.1"), spec["port"])
    payload = b"x" * spec["size"]
    ok = failed = 0
    errors: list = []
    lat: list[float] = []
    with _chirp_node(spec) as node:
        node.request(addr, payload, timeout=10)  # warm-up
        t0 = _now()
        for _ in range(spec["count"]):
            t = _now()
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
            lat.append(_now() - t)
            if dl.over():
                break
        t1 = _now()
        try:
            node.send(addr, b"", header=b"END")
        except Exception:  # noqa: BLE001 - the echo process is killed anyway
            pass
    r = _send_report(spec["count"], ok, failed, t0, t1, errors)
    r.update(_percentiles(lat))
    return r


def _w_chirp_soak_recv(spec: dict) -> dict:
    """Receive until a message with header END (data: how many were sent)."""
    import chirp

    dl = _Deadline(spec["deadline"])
    received = nbytes = 0
    sent = -1
    t_first = t_last = 0.0
    with _chirp_node(spec) as node:
        _emit(f"READY {node.port}")
        while not dl.over():
            try:
                msgs = node.recv_many(256, timeout=dl.left())
            except chirp.ChirpTimeoutError:
                continue
            t_last = _now()
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
    r = _recv_report(received, nbytes, t_first, t_last)
    r["sent"] = sent
    return r


def _w_chirp_soak_send(spec: dict) -> dict:
    """Asynchronous stream for spec["seconds"] seconds, then END."""
    dl = _Deadline(spec["deadline"])
    addr = ("127.0.0.1", spec["port"])
    payload = b"x" * spec["size"]
    window = _window(spec["size"])
    ok = failed = sent = 0
    errors: list = []
    with _chirp_node(spec) as node:
        node.send(addr, payload, header=b"")
        sent = 1
        _emit("STARTED")
        t0 = _now()
        stop = t0 + spec["seconds"]
        futs: deque = deque()
        while _now() < stop and not dl.over():
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
        t1 = _now()
        node.send(addr, str(sent).encode(), header=b"END")
    return _send_report(sent - 1, ok, failed, t0, t1, errors)


def _w_idle_chirp(spec: dict) -> dict:
    """A node that only accepts connections; lives until stdin closes."""
    nofile = _raise_nofile(spec.get("nofile", 4096))
    with _chirp_node(spec, reuse_time=3600.0, timeout=60.0) as node:
        _emit(f"READY {node.port}")
        sys.stdin.read()  # the harness closes stdin to end us
    return {"nofile": nofile}


# -- pyzmq --------------------------------------------------------------------


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
            _emit(f"READY {sock.bind_to_random_port('tcp://127.0.0.1')}")
        else:
            sock.connect(f"tcp://127.0.0.1:{port}")
        yield sock
    finally:
        sock.close()
        ctx.term()


def _w_zmq_pull(spec: dict) -> dict:
    import zmq

    dl = _Deadline(spec["deadline"])
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
            t = _now()
            if not received:
                t_first = t
            t_last = t
            received += 1
            nbytes += len(data)
    return _recv_report(received, nbytes, t_first, t_last)


def _w_zmq_push(spec: dict) -> dict:
    import zmq

    dl = _Deadline(spec["deadline"])
    payload = b"x" * spec["size"]
    ok = failed = 0
    errors: list = []
    with _zmq_socket("PUSH", spec["port"], linger=2000, SNDTIMEO=10_000) as sock:
        sock.send(payload)  # warm-up (PUSH cannot wait for delivery)
        t0 = _now()
        for _ in range(spec["count"]):
            try:
                sock.send(payload)
                ok += 1
            except zmq.Again:
                failed += 1
                errors.append("send timed out")
                if dl.over():
                    break
        t1 = _now()
    return _send_report(spec["count"], ok, failed, t0, t1, errors)


def _w_zmq_rep(spec: dict) -> dict:
    import zmq

    dl = _Deadline(spec["deadline"])
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
    import zmq

    dl = _Deadline(spec["deadline"])
    payload = b"x" * spec["size"]
    ok = failed = 0
    errors: list = []
    lat: list[float] = []
    with _zmq_socket("REQ", spec["port"], RCVTIMEO=10_000, SNDTIMEO=10_000) as sock:
        sock.send(payload)
        sock.recv()
        t0 = _now()
        for _ in range(spec["count"]):
            t = _now()
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
            lat.append(_now() - t)
            if dl.over():
                break
        t1 = _now()
        try:
            sock.send(b"END")
            sock.recv()
        except zmq.ZMQError:
            pass
    r = _send_report(spec["count"], ok, failed, t0, t1, errors)
    r.update(_percentiles(lat))
    return r


# -- libchirp 1.2.1 (run with the libchirp virtualenv's python) ----------------


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
    import queue as pyqueue

    dl = _Deadline(spec["deadline"])
    expect = spec["count"] + 1
    received = nbytes = 0
    t_first = t_last = 0.0
    with _LC(spec) as lc:
        _emit(f"READY {spec['own_port']}")
        while received < expect and not dl.over():
            try:
                msg = lc.node.get(timeout=dl.left())
            except pyqueue.Empty:
                continue
            t = _now()
            if not received:
                t_first = t
            t_last = t
            received += 1
            nbytes += len(msg.data)
    return _recv_report(received, nbytes, t_first, t_last)


def _w_lc_send(spec: dict) -> dict:
    """mode: async (a window of futures) or blocking (result() each)."""
    dl = _Deadline(spec["deadline"])
    payload = b"x" * spec["size"]
    window = spec.get("window") or _window(spec["size"])
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
        t0 = _now()
        if spec["mode"] == "blocking":
            for _ in range(spec["count"]):
                t = _now()
                o, f = settle(one(lc))
                ok, failed = ok + o, failed + f
                lat.append(_now() - t)
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
        t1 = _now()
    r = _send_report(spec["count"], ok, failed, t0, t1, errors)
    r.update(_percentiles(lat))
    return r


def _w_idle_libchirp(spec: dict) -> dict:
    nofile = _raise_nofile(spec.get("nofile", 4096))
    spec = dict(spec, reuse_time=3600.0, timeout=60.0)
    with _LC(spec):
        _emit(f"READY {spec['own_port']}")
        sys.stdin.read()
    return {"nofile": nofile}


# -- raw connections for the memory scenario -----------------------------------


def _w_conn_holder(spec: dict) -> dict:
    """Open spec["n"] TCP connections to the node, each sending an 18-byte
    handshake (a distinct claimed port, random identity); hold them until
    stdin closes."""
    _raise_nofile(spec["n"] + 256)
    socks = []
    errors: list = []
    base = spec.get("base_port", 20000)
    for i in range(spec["n"]):
        try:
            s = socket.create_connection(("127.0.0.1", spec["port"]), timeout=10)
            s.sendall((base + i).to_bytes(2, "big") + os.urandom(16))
            socks.append(s)
        except OSError as e:
            errors.append(repr(e))
            if len(errors) > 10:
                break
    _emit("OPEN", {"open": len(socks), "errors": errors[:3]})
    sys.stdin.read()
    for s in socks:
        s.close()
    return {"open": len(socks)}


_ROLES = {
    "chirp-recv": _w_chirp_recv,
    "chirp-send": _w_chirp_send,
    "chirp-echo": _w_chirp_echo,
    "chirp-request": _w_chirp_request,
    "chirp-soak-recv": _w_chirp_soak_recv,
    "chirp-soak-send": _w_chirp_soak_send,
    "chirp-idle": _w_idle_chirp,
    "zmq-pull": _w_zmq_pull,
    "zmq-push": _w_zmq_push,
    "zmq-rep": _w_zmq_rep,
    "zmq-req": _w_zmq_req,
    "lc-recv": _w_lc_recv,
    "lc-send": _w_lc_send,
    "lc-idle": _w_idle_libchirp,
    "conn-holder": _w_conn_holder,
}


def worker_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    try:
        result = _ROLES[spec["role"]](spec)
    except Exception as e:  # noqa: BLE001 - reported to the harness
        import traceback

        traceback.print_exc()
        _emit("RESULT", {"error": f"{type(e).__name__}: {e}"})
        return 1
    _emit("RESULT", result)
    return 0


# ---------------------------------------------------------------------------
# the harness side


_prctl = None


def _load_prctl() -> None:
    """Look prctl up in the parent: the child, after fork, only calls it."""
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        try:
            import ctypes

            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _prctl = False


def _set_pdeathsig() -> None:
    """Children die with the harness even if it is killed (Linux)."""
    if _prctl:
        _prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


class Child:
    """A worker process: stdout lines go to a queue via a reader thread,
    stderr to a temp file (its tail is reported on errors)."""

    live: list[Child] = []

    def __init__(self, argv: list[str], env: dict | None = None, stdin: bool = False) -> None:
        self.argv = argv
        self.err = tempfile.TemporaryFile(mode="w+b")
        _load_prctl()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.err,
            env=env,
            preexec_fn=_set_pdeathsig if _prctl else None,
        )
        self.lines: queue.Queue = queue.Queue()
        t = threading.Thread(target=self._read, daemon=True)
        t.start()
        Child.live.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        """The first stdout line starting with prefix (the rest of it)."""
        end = _now() + timeout
        while True:
            left = end - _now()
            if left <= 0:
                raise BenchError(f"no {prefix!r} line within {timeout:.0f} s" + self.tail())
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                raise BenchError(
                    f"worker exited ({self.proc.returncode}) before {prefix!r}" + self.tail()
                )
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def result(self, timeout: float) -> dict:
        r = json.loads(self.expect("RESULT", timeout))
        if "error" in r:
            raise BenchError(r["error"] + self.tail())
        return r

    def tail(self, n: int = 1500) -> str:
        try:
            self.err.flush()
            self.err.seek(0)
            text = self.err.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""
        text = text.strip()
        return f"\n  [stderr of {os.path.basename(self.argv[0])}: ...{text[-n:]}]" if text else ""

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def kill(self) -> None:
        self.close_stdin()
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.err.close()
        if self in Child.live:
            Child.live.remove(self)


def _kill_all() -> None:
    for c in list(Child.live):
        c.kill()


class BenchError(RuntimeError):
    pass


class Env:
    """Where things are: the source tree, the libchirp python, zmq."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quick = args.quick
        self.scale = args.scale
        self.src = _find_src(args.src)
        self.lc_python = args.libchirp_python or os.environ.get("CHIRP_LIBCHIRP_PYTHON")
        if not self.lc_python and self.src:
            cand = os.path.join(self.src, ".venv-libchirp", "bin", "python")
            if os.path.exists(cand):
                self.lc_python = cand
        self.lc_why = ""
        if not self.lc_python or not os.path.exists(self.lc_python):
            self.lc_why = "libchirp venv not found (bash tests/interop/setup_libchirp.sh)"
            self.lc_python = None
        else:
            r = subprocess.run(
                [self.lc_python, "-c", "import libchirp.queue"],
                capture_output=True,
                timeout=60,
                env=self.lc_env(),
            )
            if r.returncode != 0:
                self.lc_why = "libchirp does not import in " + self.lc_python
                self.lc_python = None
        try:
            import zmq  # noqa: F401

            self.zmq_why = ""
        except ImportError:
            self.zmq_why = "pyzmq not installed (pip install pyzmq)"
        self.deadline = 60.0 if self.quick else 300.0
        self.soak_seconds = args.soak_seconds
        self.tmp = tempfile.mkdtemp(prefix="chirp-bench-")
        self.built: dict | None = None

    def n(self, full: int, quick: int) -> int:
        return max(1, int((quick if self.quick else full) * self.scale))

    def lc_env(self) -> dict:
        return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}

    def chirp_cmd(self, spec: dict) -> list[str]:
        return [sys.executable, "-m", "chirp.bench", "worker", json.dumps(spec)]

    def lc_cmd(self, spec: dict) -> list[str]:
        return [str(self.lc_python), "-I", os.path.abspath(__file__), "worker", json.dumps(spec)]


def _find_src(given: str | None) -> str | None:
    """The chirp source tree (csrc/chirp.h, examples/ping.c, bench/c_stream.c)."""
    cands = [given, os.environ.get("CHIRP_SRC")]
    here = os.path.abspath(os.getcwd())
    while True:
        cands.append(here)
        up = os.path.dirname(here)
        if up == here:
            break
        here = up
    here = os.path.dirname(os.path.abspath(__file__))
    cands += [os.path.dirname(os.path.dirname(here))]  # src/chirp -> repo (editable)
    for c in cands:
        if c and os.path.exists(os.path.join(c, "csrc", "chirp.h")):
            return os.path.abspath(c)
    return None


def _free_port() -> int:
    """A port that is free now (for libchirp, whose PORT cannot be 0)."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
        s.close()
        if port > 1024:
            return port
    raise BenchError("no free port")


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


# -- rows ----------------------------------------------------------------------


def _row(scenario: int, case: str, system: str, size: int | None, **kw: object) -> dict:
    r = {"scenario": scenario, "case": case, "system": system, "size": size}
    r.update(kw)
    return r


def _fmt_size(size: int | None) -> str:
    if size is None:
        return ""
    if size >= MIB and size % MIB == 0:
        return f"{size // MIB} MiB"
    if size >= KIB and size % KIB == 0:
        return f"{size // KIB} KiB"
    return f"{size} B"


def run_stream(
    env: Env,
    recv_cmd: list[str],
    send_spec: dict,
    send_argv,
    timeout: float,
    recv_env: dict | None = None,
    send_env: dict | None = None,
) -> tuple[dict, dict]:
    """Start the receiver, then the sender at its port; both results."""
    r = s = None
    try:
        r = Child(recv_cmd, env=recv_env)
        port = int(r.expect("READY", 60).split()[0])
        s = Child(send_argv(dict(send_spec, port=port)), env=send_env)
        sres = s.result(timeout)
        rres = r.result(timeout)
        return sres, rres
    finally:
        for c in (s, r):
            if c is not None:
                c.kill()


def _stream_row(scen, case, system, size, count, sres, rres, at="recv", **kw) -> dict:
    """A row from sender and receiver results; rate at the receiver or sender."""
    rate = rres["rate"] if at == "recv" else sres["rate"]
    note = []
    failed = sres.get("failed", 0)
    if failed:
        note.append(f"{failed} failed: {sres.get('errors')}")
    if rres is not None and rres.get("received", count + 1) < count + 1:
        note.append(f"received {rres['received']} of {count + 1}")
    row = _row(
        scen,
        case,
        system,
        size,
        count=count,
        rate=rate,
        mbps=rate * size / 1e6 if size else None,
        sender_rate=sres.get("rate"),
        p50_us=sres.get("p50_us"),
        p99_us=sres.get("p99_us"),
        note="; ".join(note),
        ok=not note,
    )
    row.update(kw)
    return row


def _err_row(scen, case, system, size, why: str, skipped: bool = False) -> dict:
    return _row(
        scen,
        case,
        system,
        size,
        rate=None,
        note=("skipped: " if skipped else "ERROR: ") + why,
        ok=skipped,
        skipped=skipped,
    )


def _guard(rows: list, scen, case, system, size, fn) -> None:
    """Run one measurement; a failure becomes an ERROR row, not a crash."""
    t = _now()
    try:
        out = fn()
        rows.extend(out if isinstance(out, list) else [out])
    except (BenchError, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        rows.append(_err_row(scen, case, system, size, str(e)))
    except Exception as e:  # noqa: BLE001 - a harness bug: report it, go on
        rows.append(_err_row(scen, case, system, size, f"{type(e).__name__}: {e}"))
    last = rows[-1] if rows else {}
    rate = last.get("rate")
    print(
        f"  [{scen}] {case:<28} {system:<22} {_fmt_size(size):>7}  "
        + (f"{rate:>12,.0f} msg/s" if rate else f"{last.get('note', '')[:200]}")
        + f"  ({_now() - t:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


# -- scenarios -------------------------------------------------------------------


def scenario1(env: Env) -> list[dict]:
    rows: list[dict] = []
    for size, full, quick in ((64, 200_000, 20_000), (KIB, 100_000, 10_000), (MIB, 1000, 60)):
        n = env.n(full, quick)
        dl = env.deadline
        base = {"size": size, "count": n, "deadline": dl, "sync": False}
        rs = {"count": n, "deadline": dl, "sync": False}
        case = "async stream"

        def chirp_plain(base=base, rs=rs, n=n, size=size, dl=dl, case=case):
            s, r = run_stream(
                env,
                env.chirp_cmd(dict(rs, role="chirp-recv")),
                dict(base, role="chirp-send", mode="async"),
                env.chirp_cmd,
                dl + 30,
            )
            return _stream_row(1, case, "chirp", size, n, s, r, ref=True)

        def chirp_batch(base=base, rs=rs, n=n, size=size, dl=dl, case=case):
            s, r = run_stream(
                env,
                env.chirp_cmd(dict(rs, role="chirp-recv", batch=256)),
                dict(base, role="chirp-send", mode="batch"),
                env.chirp_cmd,
                dl + 30,
            )
            return _stream_row(1, case, "chirp batch API", size, n, s, r)

        def zmq_(base=base, rs=rs, n=n, size=size, dl=dl, case=case):
            s, r = run_stream(
                env,
                env.chirp_cmd(dict(rs, role="zmq-pull")),
                dict(base, role="zmq-push"),
                env.chirp_cmd,
                dl + 30,
            )
            return _stream_row(1, case, "pyzmq PUSH/PULL", size, n, s, r, peer=True)

        def lc(base=base, rs=rs, n=n, size=size, dl=dl, case=case):
            s, r = run_stream(
                env,
                env.lc_cmd(dict(rs, role="lc-recv", own_port=_free_port())),
                dict(base, role="lc-send", mode="async", own_port=_free_port()),
                env.lc_cmd,
                dl + 30,
                recv_env=env.lc_env(),
                send_env=env.lc_env(),
            )
            return _stream_row(1, case, "libchirp async", size, n, s, r, peer=True)

        _guard(rows, 1, case, "chirp", size, chirp_plain)
        _guard(rows, 1, case, "chirp batch API", size, chirp_batch)
        if env.zmq_why:
            rows.append(_err_row(1, case, "pyzmq PUSH/PULL", size, env.zmq_why, True))
        else:
            _guard(rows, 1, case, "pyzmq PUSH/PULL", size, zmq_)
        if env.lc_why:
            rows.append(_err_row(1, case, "libchirp async", size, env.lc_why, True))
        else:
            _guard(rows, 1, case, "libchirp async", size, lc)
    return rows


def _reqrep_rows(env: Env, scen: int, case: str, n: int, ref_sys: str) -> list[dict]:
    """chirp request() vs an echo process, and pyzmq REQ/REP."""
    rows: list[dict] = []
    dl = env.deadline

    def chirp_rr():
        s, _ = run_stream(
            env,
            env.chirp_cmd({"role": "chirp-echo", "deadline": dl + 20}),
            {"role": "chirp-request", "size": 64, "count": n, "deadline": dl},
            env.chirp_cmd,
            dl + 30,
        )
        return _stream_row(scen, case, "chirp request()", 64, n, s, None, at="send", ref=True)

    def zmq_rr():
        s, _ = run_stream(
            env,
            env.chirp_cmd({"role": "zmq-rep", "deadline": dl + 20}),
            {"role": "zmq-req", "size": 64, "count": n, "deadline": dl},
            env.chirp_cmd,
            dl + 30,
        )
        return _stream_row(
            scen, case, "pyzmq REQ/REP", 64, n, s, None, at="send", peer=True, vs=ref_sys
        )

    if scen == 3:
        _guard(rows, scen, case, "chirp request()", 64, chirp_rr)
    if env.zmq_why:
        rows.append(_err_row(scen, case, "pyzmq REQ/REP", 64, env.zmq_why, True))
    else:
        _guard(rows, scen, case, "pyzmq REQ/REP", 64, zmq_rr)
    return rows


def scenario2(env: Env) -> list[dict]:
    rows: list[dict] = []
    dl = env.deadline
    case = "sync (acknowledged) stream"
    n_pipe = env.n(50_000, 5000)
    n_block = env.n(10_000, 1000)

    def chirp_run(mode: str, n: int, system: str):
        def go():
            s, r = run_stream(
                env,
                env.chirp_cmd({"role": "chirp-recv", "count": n, "deadline": dl, "sync": True}),
                {
                    "role": "chirp-send",
                    "mode": mode,
                    "size": 64,
                    "count": n,
                    "deadline": dl,
                    "sync": True,
                },
                env.chirp_cmd,
                dl + 30,
            )
            return _stream_row(2, case, system, 64, n, s, r, at="send", ref=True, group=mode)

        return go

    def lc_run(mode: str, n: int, system: str):
        def go():
            s, r = run_stream(
                env,
                env.lc_cmd(
                    {
                        "role": "lc-recv",
                        "count": n,
                        "deadline": dl,
                        "sync": True,
                        "own_port": _free_port(),
                    }
                ),
                {
                    "role": "lc-send",
                    "mode": mode,
                    "size": 64,
                    "count": n,
                    "deadline": dl,
                    "sync": True,
                    "own_port": _free_port(),
                },
                env.lc_cmd,
                dl + 30,
                recv_env=env.lc_env(),
                send_env=env.lc_env(),
            )
            return _stream_row(2, case, system, 64, n, s, r, at="send", peer=True, group=mode)

        return go

    _guard(rows, 2, case, "chirp send_async", 64, chirp_run("async", n_pipe, "chirp send_async"))
    if env.lc_why:
        rows.append(_err_row(2, case, "libchirp sync futures", 64, env.lc_why, True))
    else:
        _guard(
            rows,
            2,
            case,
            "libchirp sync futures",
            64,
            lc_run("async", n_pipe, "libchirp sync futures"),
        )
    _guard(rows, 2, case, "chirp send()", 64, chirp_run("blocking", n_block, "chirp send()"))
    if env.lc_why:
        rows.append(_err_row(2, case, "libchirp sync blocking", 64, env.lc_why, True))
    else:
        _guard(
            rows,
            2,
            case,
            "libchirp sync blocking",
            64,
            lc_run("blocking", n_block, "libchirp sync blocking"),
        )
    for r in _reqrep_rows(env, 2, case, n_block, "chirp send()"):
        r["group"] = "blocking"
        rows.append(r)
    return rows


def scenario3(env: Env) -> list[dict]:
    return _reqrep_rows(env, 3, "request/reply round trip", env.n(10_000, 1000), "chirp request()")


def _netns_ok() -> str:
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip missing (util-linux, iproute2)"
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return "cannot create a network namespace: " + r.stderr.strip()
    return ""


def scenario4(env: Env) -> list[dict]:
    case = "TLS vs plaintext stream"
    why = _netns_ok()
    if why:
        return [_err_row(4, case, "chirp TLS", None, why, True)]
    try:
        from .pki import make_pki

        pki = make_pki(os.path.join(env.tmp, "pki"), ["a", "b"])
    except Exception as e:  # noqa: BLE001
        return [_err_row(4, case, "chirp TLS", None, f"make_pki failed: {e}")]
    cases = []
    for size, full, quick in ((64, 100_000, 10_000), (MIB, 500, 40)):
        cases.append({"size": size, "count": env.n(full, quick)})
    spec = {
        "cases": cases,
        "deadline": env.deadline,
        "a": str(pki["a"]),
        "b": str(pki["b"]),
        "dh": str(pki["dh"]),
    }
    inner = " ".join(
        [
            f"ip link set lo up && ip addr add {TLS_ADDRESS}/32 dev lo && exec",
            shlex.quote(sys.executable),
            "-m",
            "chirp.bench",
            "netns",
            shlex.quote(json.dumps(spec)),
        ]
    )
    c = Child(["unshare", "-n", "sh", "-c", inner])
    try:
        total = sum(2 * (env.deadline + 40) for _ in cases)
        out = json.loads(c.expect("ROWS", total))
    except BenchError as e:
        return [_err_row(4, case, "chirp TLS", None, str(e))]
    finally:
        c.kill()
    for r in out:
        print(
            f"  [4] {case:<28} {r['system']:<22} {_fmt_size(r['size']):>7}  "
            + (f"{r['rate']:>12,.0f} msg/s" if r.get("rate") else r.get("note", "")),
            file=sys.stderr,
        )
    return out


def netns_main(spec_json: str) -> int:
    """Inside the namespace: TLS and plaintext streams; prints ROWS <json>."""
    spec = json.loads(spec_json)
    env = argparse.Namespace(
        chirp_cmd=lambda s: [sys.executable, "-m", "chirp.bench", "worker", json.dumps(s)]
    )
    rows: list[dict] = []
    dl = spec["deadline"]
    case = "TLS vs plaintext stream"
    for c in spec["cases"]:
        size, n = c["size"], c["count"]
        for system, tls in (("chirp plaintext", False), ("chirp TLS", True)):
            recv = {"role": "chirp-recv", "count": n, "deadline": dl}
            send = {
                "role": "chirp-send",
                "mode": "async",
                "size": size,
                "count": n,
                "deadline": dl,
                "host": TLS_ADDRESS,
            }
            if tls:
                recv.update(cert=spec["b"], dh=spec["dh"])
                send.update(cert=spec["a"], dh=spec["dh"])

            def go(recv=recv, send=send, system=system, tls=tls, size=size, n=n):
                s, r = run_stream(env, env.chirp_cmd(recv), send, env.chirp_cmd, dl + 30)
                return _stream_row(4, case, system, size, n, s, r, ref=tls, peer=not tls)

            _guard(rows, 4, case, system, size, go)
    _emit("ROWS", rows)
    return 0


def _build_c(env: Env) -> dict:
    """Compile the core once, then examples/ping.c and bench/c_stream.c."""
    if env.built is not None:
        return env.built
    if env.src is None:
        raise BenchError("the chirp source tree was not found (--src DIR)")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise BenchError("no C compiler (cc)")
    out = os.path.join(env.tmp, "c")
    os.makedirs(out, exist_ok=True)
    csrc = os.path.join(env.src, "csrc")
    srcs = sorted(
        os.path.join(csrc, f)
        for f in os.listdir(csrc)
        if f.endswith(".c") and f[:1].isalpha() and f[:1].islower()
    )
    flags = ["-std=c99", "-O2", "-I" + csrc]
    libs = ["-luv", "-lssl", "-lcrypto"]
    r = subprocess.run(
        [cc, *flags, "-c", *srcs], cwd=out, capture_output=True, text=True, timeout=300
    )
    if r.returncode != 0:
        raise BenchError("building csrc failed: " + r.stderr[-1500:])
    objs = [os.path.join(out, os.path.basename(s)[:-2] + ".o") for s in srcs]
    built = {}
    for name, main_c in (
        ("c_ping", os.path.join(env.src, "examples", "ping.c")),
        ("c_stream", os.path.join(env.src, "bench", "c_stream.c")),
    ):
        exe = os.path.join(out, name)
        r = subprocess.run(
            [cc, *flags, main_c, *objs, *libs, "-o", exe],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if r.returncode != 0:
            raise BenchError(f"building {name} failed: " + r.stderr[-1500:])
        built[name] = exe
    env.built = built
    return built


def _kv(line: str) -> dict:
    d = {}
    for part in line.split():
        if "=" in part:
            k, v = part.split("=", 1)
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
    return d


def scenario5(env: Env) -> list[dict]:
    rows: list[dict] = []
    n_async = env.n(1_000_000, 100_000)
    n_sync = env.n(200_000, 20_000)
    dl = env.deadline

    def ping(sync: bool, n: int):
        def go():
            exe = _build_c(env)["c_ping"]
            argv = [exe] + (["-s"] if sync else []) + [str(n), "64"]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=dl)
            line = next((x for x in r.stdout.splitlines() if x.rstrip().endswith("msg/s")), "")
            if r.returncode != 0 or not line:
                raise BenchError(
                    f"c_ping exited {r.returncode}: {r.stdout[-500:]} {r.stderr[-500:]}"
                )
            rate = float(line.split(":")[-1].split()[0])
            return _row(
                5,
                "C core, one process (ping.c)",
                "chirp C " + ("sync" if sync else "async"),
                64,
                count=n,
                rate=rate,
                mbps=rate * 64 / 1e6,
                note="",
                ok=True,
            )

        return go

    def stream(sync: bool, n: int):
        def go():
            exe = _build_c(env)["c_stream"]
            s = ["-s"] if sync else []
            r = c = None
            try:
                r = Child([exe, "recv", *s, str(n + 1), str(dl)])
                port = r.expect("READY", 30).split()[0]
                c = Child([exe, "send", *s, port, str(n), "64", "4096", str(dl)])
                sres = _kv(c.expect("RESULT", dl + 30))
                rres = _kv(r.expect("RESULT", dl + 30))
            finally:
                for x in (c, r):
                    if x is not None:
                        x.kill()
            at = "send" if sync else "recv"
            sres["failed"] = int(sres.get("failed", 0))
            sres["errors"] = []
            rres["received"] = int(rres.get("received", 0))
            return _stream_row(
                5,
                "C core, two processes (c_stream.c)",
                "chirp C " + ("sync" if sync else "async"),
                64,
                n,
                sres,
                rres,
                at=at,
            )

        return go

    for sync, n in ((False, n_async), (True, n_sync)):
        name = "chirp C " + ("sync" if sync else "async")
        _guard(rows, 5, "C core, one process (ping.c)", name, 64, ping(sync, n))
        _guard(rows, 5, "C core, two processes (c_stream.c)", name, 64, stream(sync, n))
    return rows


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def scenario6(env: Env) -> list[dict]:
    rows: list[dict] = []
    nconn = 1000
    case = f"RSS, {nconn} idle connections"

    def idle(system: str):
        def go():
            if system == "chirp":
                node = Child(env.chirp_cmd({"role": "chirp-idle"}), stdin=True)
            else:
                node = Child(
                    env.lc_cmd({"role": "lc-idle", "own_port": _free_port()}),
                    env=env.lc_env(),
                    stdin=True,
                )
            holder = None
            try:
                port = int(node.expect("READY", 60).split()[0])
                time.sleep(0.5)
                before, fds0 = _rss_kib(node.pid), _fd_count(node.pid)
                holder = Child(
                    env.chirp_cmd({"role": "conn-holder", "n": nconn, "port": port}), stdin=True
                )
                opened = json.loads(holder.expect("OPEN", 120))
                end = _now() + 30
                while _now() < end and _fd_count(node.pid) < fds0 + opened["open"]:
                    time.sleep(0.1)
                fds1 = _fd_count(node.pid)
                time.sleep(1.0)
                after = _rss_kib(node.pid)
            finally:
                for c in (holder, node):
                    if c is not None:
                        c.kill()
            held = fds1 - fds0
            per = (after - before) / max(1, held)
            note = (
                f"before {_mib(before)}, after {_mib(after)}, {per:.1f} KiB per connection "
                f"({held} accepted of {opened['open']} opened)"
            )
            if opened.get("errors"):
                note += f"; holder errors: {opened['errors']}"
            return _row(
                6,
                case,
                system,
                None,
                rate=None,
                note=note,
                ok=held >= nconn * 0.95,
                rss_before_kib=before,
                rss_after_kib=after,
                per_conn_kib=per,
                accepted=held,
            )

        return go

    _guard(rows, 6, case, "chirp", None, idle("chirp"))
    if env.lc_why:
        rows.append(_err_row(6, case, "libchirp", None, env.lc_why, True))
    else:
        _guard(rows, 6, case, "libchirp", None, idle("libchirp"))

    secs = env.soak_seconds
    size = KIB
    scase = f"RSS across a {secs:g} s stream"

    def soak():
        dl = secs + 120
        r = s = None
        samples: dict = {"receiver": [], "sender": []}
        try:
            r = Child(env.chirp_cmd({"role": "chirp-soak-recv", "deadline": dl}))
            port = int(r.expect("READY", 60).split()[0])
            s = Child(
                env.chirp_cmd(
                    {
                        "role": "chirp-soak-send",
                        "port": port,
                        "size": size,
                        "seconds": secs,
                        "deadline": dl,
                    }
                )
            )
            s.expect("STARTED", 60)  # sample from here: the sender's node is up
            end = _now() + dl
            while _now() < end and s.proc.poll() is None:
                for name, c in (("receiver", r), ("sender", s)):
                    v = _rss_kib(c.pid)
                    if v > 0:
                        samples[name].append(v)
                time.sleep(1.0 if secs >= 20 else 0.25)
            sres = s.result(30)
            rres = r.result(30)
        finally:
            for c in (s, r):
                if c is not None:
                    c.kill()
        out = []
        for name in ("receiver", "sender"):
            v = samples[name] or [0]
            half = len(v) // 2
            # Growth shows as a second half above the first; a bounded
            # window of sends in flight does not.
            max1, max2 = max(v[:half] or v), max(v[half:])
            out.append(
                _row(
                    6,
                    scase,
                    f"chirp {name}",
                    size,
                    count=sres["ok"],
                    rate=rres["rate"] if name == "receiver" else sres["rate"],
                    mbps=None,
                    ok=True,
                    rss_first_kib=v[0],
                    rss_last_kib=v[-1],
                    rss_max_kib=max(v),
                    rss_max_first_half_kib=max1,
                    rss_max_second_half_kib=max2,
                    samples=len(v),
                    note=f"RSS first {_mib(v[0])}, last {_mib(v[-1])}, max {_mib(max1)} "
                    f"in the first half, {_mib(max2)} in the second"
                    + (
                        f"; received {rres['received']} of {rres.get('sent')}"
                        if rres["received"] != rres.get("sent")
                        else ""
                    ),
                )
            )
        return out

    _guard(rows, 6, scase, "chirp", size, soak)
    return rows


SCENARIOS = {1: scenario1, 2: scenario2, 3: scenario3, 4: scenario4, 5: scenario5, 6: scenario6}


def _ratios(rows: list[dict]) -> None:
    """Fill ratio = chirp / peer on the peer rows (same scenario, size and group)."""
    for r in rows:
        if not r.get("peer") or not r.get("rate"):
            continue
        for c in rows:
            if (
                c.get("ref")
                and c["scenario"] == r["scenario"]
                and c.get("size") == r.get("size")
                and c.get("group") == r.get("group")
                and (not r.get("vs") or c["system"] == r["vs"])
                and c.get("rate")
            ):
                r["ratio"] = c["rate"] / r["rate"]
                r["ratio_of"] = c["system"]
                break


def format_table(rows: list[dict]) -> str:
    head = (
        "#",
        "case",
        "system",
        "size",
        "msg/s",
        "MB/s",
        "chirp/peer",
        "p50 us",
        "p99 us",
        "note",
    )
    lines = []
    for r in rows:
        rate = r.get("rate")
        mbps = r.get("mbps")
        lines.append(
            (
                str(r["scenario"]),
                r["case"],
                r["system"],
                _fmt_size(r.get("size")),
                f"{rate:,.0f}" if rate else ("-" if r.get("ok", True) else "ERROR"),
                f"{mbps:,.1f}" if mbps and (r.get("size") or 0) >= KIB else "",
                f"{r['ratio']:.2f}" if r.get("ratio") else "",
                f"{r['p50_us']:,.0f}" if r.get("p50_us") else "",
                f"{r['p99_us']:,.0f}" if r.get("p99_us") else "",
                r.get("note", "") or "",
            )
        )
    widths = [
        max(len(h), *(len(x[i]) for x in lines)) if lines else len(h) for i, h in enumerate(head)
    ]
    right = {0, 4, 5, 6, 7, 8}

    def fmt(cells) -> str:
        out = []
        for i, c in enumerate(cells):
            if i == len(cells) - 1:
                out.append(c)
            else:
                out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    text = [fmt(head), fmt(["-" * w for w in widths[:-1]] + ["----"])]
    last = None
    for r, cells in zip(rows, lines, strict=True):
        if last is not None and r["scenario"] != last:
            text.append("")
        last = r["scenario"]
        text.append(fmt(cells))
    text.append("")
    text.append(
        "chirp/peer: the chirp row's rate over this peer row's rate (same scenario and "
        "size); scenario 4: TLS over plaintext."
    )
    text.append(
        "rates: stream scenarios at the receiver (first to last message); synchronous "
        "and request/reply at the sender."
    )
    return "\n".join(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="every scenario briefly (smoke test)")
    p.add_argument(
        "--scenario",
        type=int,
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument(
        "--soak-seconds",
        type=float,
        default=None,
        help="duration of the memory soak stream (default 600, --quick 10)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    p.add_argument("--src", help="chirp source tree (csrc/, examples/, bench/) for scenario 5")
    p.add_argument("--libchirp-python", help="python of a virtualenv with libchirp 1.2.1")


def run(args: argparse.Namespace) -> int:
    if args.soak_seconds is None:
        args.soak_seconds = 10.0 if args.quick else 600.0
    env = Env(args)
    chosen = sorted(set(args.scenario or SCENARIOS))
    rows: list[dict] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM,)}

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t0 = _now()
    try:
        print(
            f"chirp bench: scenarios {chosen}{' (quick)' if args.quick else ''}; "
            f"pyzmq: {env.zmq_why or 'yes'}; libchirp: {env.lc_why or env.lc_python}; "
            f"source tree: {env.src}",
            file=sys.stderr,
            flush=True,
        )
        for s in chosen:
            rows.extend(SCENARIOS[s](env))
    except KeyboardInterrupt:
        print("chirp bench: interrupted", file=sys.stderr)
        return 130
    finally:
        _kill_all()
        for s, h in old.items():
            signal.signal(s, h)
        shutil.rmtree(env.tmp, ignore_errors=True)
    _ratios(rows)
    print(format_table(rows))
    print(f"\n({_now() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"quick": args.quick, "scenarios": chosen, "rows": rows}, f, indent=1)
    bad = [r for r in rows if not r.get("ok", True) and r["system"].startswith("chirp")]
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"] and len(argv) == 2:
        return worker_main(argv[1])
    if argv[:1] == ["netns"] and len(argv) == 2:
        try:
            return netns_main(argv[1])
        finally:
            _kill_all()
    p = argparse.ArgumentParser(prog="chirp bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
