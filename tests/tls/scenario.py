#!/usr/bin/env python3
"""TLS scenarios, run inside a network namespace by the tests (see netns.py).

Usage: ``python scenario.py NAME 'JSON-PARAMS'``.

Every scenario reports facts as JSON lines on stdout and ends with one
``{"kind": "result", ...}`` line; the tests make the assertions.  Nodes bind
0.0.0.0 only and talk to ``(ADDRESS, port)``, which both sides see as a
non-loopback address, so every chirp connection here is TLS unless a node
disables encryption.  Every wait is bounded; the whole process gives up
after ``LIFETIME`` seconds (the test kills the process group anyway).

``echo`` is the peer process of the two-process scenario: it listens, prints
``{"kind": "ready", "port": P, "identity": HEX}``, answers every message with
the same data and header, and exits (printing ``{"kind": "done"}``) when its
stdin closes.
"""

import faulthandler
import hashlib
import json
import os
import queue
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import warnings

import chirp

# TLS 1.1 is deprecated in Python's ssl module; a test uses it on purpose.
warnings.simplefilter("ignore", DeprecationWarning)

ADDRESS = "198.18.0.1"
LIFETIME = float(os.environ.get("CHIRP_TLS_SCENARIO_LIFETIME", "50"))
faulthandler.dump_traceback_later(LIFETIME, exit=True)


def emit(**rec):
    sys.stdout.write(json.dumps(rec, sort_keys=True) + "\n")
    sys.stdout.flush()


def err_info(e):
    return {
        "type": type(e).__name__,
        "mro": [c.__name__ for c in type(e).__mro__],
        "msg": str(e),
    }


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


_BLOCK = bytes((i * 131 + (i >> 7)) & 0xFF for i in range(4099))


def pattern(size, seed=0):
    """Deterministic bytes that differ with ``seed``."""
    block = bytes([seed & 0xFF]) + _BLOCK
    return (block * (size // len(block) + 1))[:size]


def node(p, name, **kw):
    """A TLS node with the certificate of ``name`` from PKI ``p``."""
    kw.setdefault("port", 0)
    kw.setdefault("bind_v6", "")
    kw.setdefault("timeout", 5.0)
    if name is not None:
        kw.setdefault("cert_chain_pem", p[name])
        kw.setdefault("dh_params_pem", p["dh"])
    return chirp.Node(**kw)


def to(n):
    return (ADDRESS, n.port)


def expect_nothing(n, wait=0.5):
    """True if nothing arrives at ``n`` within ``wait`` seconds."""
    try:
        m = n.recv(timeout=wait)
    except chirp.ChirpTimeoutError:
        return True
    emit(kind="unexpected", data_len=len(m.data), header=m.header.hex())
    return False


def send_and_fail(sender, dest, timeout=10.0):
    """Send one message that should fail; the error and how long it took."""
    t0 = time.monotonic()
    fut = sender.send_async(dest, b"must not arrive", header=b"nope")
    try:
        fut.result(timeout=timeout)
    except chirp.ChirpError as e:
        return {"failed": True, "error": err_info(e), "elapsed": time.monotonic() - t0}
    except Exception as e:  # a wrong type of error is a finding, report it
        return {"failed": True, "error": err_info(e), "elapsed": time.monotonic() - t0}
    return {"failed": False, "elapsed": time.monotonic() - t0}


def good_exchange(sender, receiver, data=b"still serving", header=b"ok"):
    """``sender`` -> ``receiver`` one message; True if it came intact."""
    fut = sender.send_async(to(receiver), data, header=header)
    try:
        m = receiver.recv(timeout=10)
        fut.result(timeout=10)
    except Exception as e:
        emit(kind="good_exchange_failed", error=err_info(e))
        return False
    return bytes(m.data) == data and bytes(m.header) == header


# --------------------------------------------------------------------------
# chirp <-> chirp


SIZES = [0, 1, 100_000, 4 * 1024 * 1024]


def sc_roundtrip(p):
    """Two TLS nodes in this process: payload sizes, order, replies, requests."""
    sync = p["synchronous"]
    count = p.get("count", 3000)
    out = {}
    with node(p, "a", synchronous=sync) as a, node(p, "b", synchronous=sync) as b:
        # payload sizes, with headers
        sizes = []
        for i, size in enumerate(SIZES):
            data = pattern(size, seed=i)
            header = b"hdr-%d" % size
            fut = a.send_async(to(b), data, header=header)
            m = b.recv(timeout=15)
            fut.result(timeout=15)
            sizes.append(
                {
                    "size": size,
                    "len": len(m.data),
                    "data_ok": bytes(m.data) == data,
                    "header_ok": bytes(m.header) == header,
                    "address": m.address,
                    "port": m.port,
                    "remote_identity_ok": m.remote_identity == a.identity,
                }
            )
        out["sizes"] = sizes
        out["a_port"] = a.port

        # a few thousand small messages, in order
        futs = [
            a.send_async(to(b), b"%08d" % i + pattern(40, i), header=b"n") for i in range(count)
        ]
        got = []
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            for m in b.recv_many(256, timeout=2):
                got.append(bytes(m.data))
        send_errors = 0
        for f in futs:
            try:
                f.result(timeout=10)
            except Exception:
                send_errors += 1
        nums = [int(g[:8]) for g in got]
        out["many"] = {
            "sent": count,
            "received": len(got),
            "in_order": nums == list(range(count)),
            "intact": all(
                g == b"%08d" % i + pattern(40, i) for i, g in zip(nums, got, strict=False)
            ),
            "send_errors": send_errors,
        }

        # reply from the receiver, back over the same TLS connection
        fut = a.send_async(to(b), b"question", header=b"q")
        m = b.recv(timeout=10)
        rfut = b.reply_async(m, b"answer to " + bytes(m.data), header=b"r")
        r = a.recv(timeout=10)
        fut.result(timeout=10)
        rfut.result(timeout=10)
        out["reply"] = {
            "data": bytes(r.data).decode(),
            "header": bytes(r.header).decode(),
            "same_identity": r.identity == m.identity,
            "from_port": r.port,
            "b_port": b.port,
        }

        # request/response with a serving thread
        def serve(k):
            for _ in range(k):
                q = b.recv(timeout=10)
                b.reply(q, bytes(q.data)[::-1], header=bytes(q.header))

        th = threading.Thread(target=serve, args=(3,), daemon=True)
        th.start()
        reqs = []
        for i, size in enumerate([5, 100_000, 4 * 1024 * 1024]):
            data = pattern(size, seed=50 + i)
            ans = a.request(to(b), data, header=b"req%d" % i, timeout=15)
            reqs.append(
                {
                    "size": size,
                    "ok": bytes(ans.data) == data[::-1],
                    "header_ok": bytes(ans.header) == b"req%d" % i,
                }
            )
        th.join(timeout=10)
        out["requests"] = reqs
    emit(kind="result", **out)


def sc_echo(p):
    """The peer process: answer everything, until stdin closes."""
    sync = p["synchronous"]
    with node(p, p.get("name", "b"), synchronous=sync, auto_release=False) as n:
        emit(kind="ready", port=n.port, identity=n.identity.hex())
        stop = threading.Event()

        def watch_stdin():
            try:
                sys.stdin.read()
            finally:
                stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        received = 0
        pending = []
        errors = []
        while not stop.is_set():
            try:
                msgs = n.recv_many(64, timeout=0.2)
            except chirp.ChirpTimeoutError:
                continue
            for m in msgs:
                received += 1
                # The response first, then the release (and so the ACK).
                pending.append(n.reply_async(m, m.data, header=m.header))
                m.release()
            keep = []
            for f in pending:
                if f.done():
                    if f.exception() is not None:
                        errors.append(err_info(f.exception()))
                else:
                    keep.append(f)
            pending = keep
        for f in pending:
            try:
                f.result(timeout=5)
            except Exception as e:
                errors.append(err_info(e))
        emit(kind="done", received=received, reply_errors=errors[:5], n_errors=len(errors))


class Child:
    """A scenario process started from this one (same namespace)."""

    def __init__(self, name, params):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), name, json.dumps(params)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_record(self, kind, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"child printed no {kind!r} record in {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"child exited ({self.proc.wait()}) before {kind!r}")
            if line.startswith("{"):
                rec = json.loads(line)
                if rec.get("kind") == kind:
                    return rec

    def finish(self, timeout=10):
        """Close its stdin and return its "done" record."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        return self.wait_record("done", timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def sc_twoproc(p):
    """This process talks TLS to an echo peer in another process."""
    sync = p["synchronous"]
    count = p.get("count", 2000)
    child = Child("echo", {**p, "name": "b", "synchronous": not sync})
    out = {}
    try:
        ready = child.wait_record("ready", 15)
        dest = (ADDRESS, ready["port"])
        with node(p, "a", synchronous=sync) as a:
            # requests of every size: the echo must come back intact
            reqs = []
            for i, size in enumerate(SIZES):
                data = pattern(size, seed=100 + i)
                header = b"two-%d" % size
                ans = a.request(dest, data, header=header, timeout=15)
                reqs.append(
                    {
                        "size": size,
                        "data_ok": bytes(ans.data) == data,
                        "header_ok": bytes(ans.header) == header,
                        "len": len(ans.data),
                        "remote_identity_ok": ans.remote_identity.hex() == ready["identity"],
                        "address": ans.address,
                    }
                )
            out["requests"] = reqs

            # blocking send (the echo peer answers; we drain the answers)
            a.send(dest, b"blocking", header=b"bl")
            ans = a.recv(timeout=10)
            out["blocking_send_echo"] = bytes(ans.data).decode()

            # many numbered messages; the echoes come back in order
            futs = [a.send_async(dest, b"%08d" % i, header=b"m") for i in range(count)]
            got = []
            deadline = time.monotonic() + 30
            while len(got) < count and time.monotonic() < deadline:
                try:
                    got.extend(bytes(m.data) for m in a.recv_many(256, timeout=2))
                except chirp.ChirpTimeoutError:
                    break
            errs = 0
            for f in futs:
                try:
                    f.result(timeout=10)
                except Exception:
                    errs += 1
            out["many"] = {
                "sent": count,
                "received": len(got),
                "in_order": got == [b"%08d" % i for i in range(count)],
                "send_errors": errs,
            }
        out["peer"] = child.finish(timeout=15)
    finally:
        child.kill()
    emit(kind="result", **out)


class Tap:
    """A TCP forwarder on ADDRESS that keeps a copy of the bytes in each
    direction, to see what really goes over the wire."""

    def __init__(self, target_port):
        self.target = (ADDRESS, target_port)
        self.lsock = socket.socket()
        self.lsock.bind(("0.0.0.0", 0))
        self.lsock.listen(8)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.up = bytearray()  # client -> server
        self.down = bytearray()  # server -> client
        self.stop = threading.Event()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except (TimeoutError, OSError):
                continue
            s = socket.create_connection(self.target, timeout=5)
            self.socks += [c, s]
            threading.Thread(target=self._pipe, args=(c, s, self.up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, self.down), daemon=True).start()

    def _pipe(self, src, dst, log):
        src.settimeout(0.2)
        while not self.stop.is_set():
            try:
                b = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not b:
                break
            log += b
            try:
                dst.sendall(b)
            except OSError:
                break
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        for s in self.socks:
            s.close()
        self.lsock.close()


def sc_wiretap(p):
    """a -> tap -> b and the answer back: with TLS the payload, header and
    identities never appear on the wire; with encryption disabled (the
    control) they do."""
    plain = p["plaintext"]
    kw = {"disable_encryption": True} if plain else {}
    name_a, name_b = (None, None) if plain else ("a", "b")
    secret = b"SECRET-PAYLOAD-" + b"x" * 200
    with (
        node(p, name_a, synchronous=True, **kw) as a,
        node(p, name_b, synchronous=False, **kw) as b,
    ):
        tap = Tap(b.port)
        try:
            fut = a.send_async((ADDRESS, tap.port), secret, header=b"SECRET-HEADER")
            m = b.recv(timeout=10)
            rf = b.reply_async(m, b"SECRET-ANSWER")
            ans = a.recv(timeout=10)
            fut.result(timeout=10)
            rf.result(timeout=10)
            time.sleep(0.1)
            up, down = bytes(tap.up), bytes(tap.down)
        finally:
            tap.close()
        out = {
            "delivered": bytes(m.data) == secret and bytes(m.header) == b"SECRET-HEADER",
            "answered": bytes(ans.data) == b"SECRET-ANSWER",
            "up_len": len(up),
            "down_len": len(down),
            "up_head": up[:5].hex(),
            "down_head": down[:5].hex(),
            "payload_visible": secret in up,
            "header_visible": b"SECRET-HEADER" in up,
            "answer_visible": b"SECRET-ANSWER" in down,
            "identity_visible": a.identity in up or b.identity in down,
        }
    emit(kind="result", **out)


def drain(n, count, timeout=20):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            got.extend(bytes(m.data) for m in n.recv_many(256, timeout=0.5))
        except chirp.ChirpTimeoutError:
            pass
    return got


def results(futs, timeout=10):
    errs = []
    for f in futs:
        try:
            f.result(timeout=timeout)
        except Exception as e:
            errs.append(err_info(e))
    return errs


def sc_crossfire(p):
    """Both nodes start sending to each other at the same moment, so two
    TLS connections race; every message arrives, in order, without errors."""
    count = p.get("count", 500)
    out = {}
    kw = {"disable_encryption": True} if p.get("plaintext") else {}
    with (
        node(p, "a", synchronous=p["synchronous"], **kw) as a,
        node(p, "b", synchronous=p["synchronous"], **kw) as b,
    ):
        go = threading.Event()
        futs = {"a": [], "b": []}

        def blast(src, dst, key):
            go.wait(5)
            futs[key] = [
                src.send_async(to(dst), b"%s%06d" % (key.encode(), i)) for i in range(count)
            ]

        ths = [
            threading.Thread(target=blast, args=(a, b, "a")),
            threading.Thread(target=blast, args=(b, a, "b")),
        ]
        for t in ths:
            t.start()
        go.set()
        got_b = []
        got_a = []
        deadline = time.monotonic() + 30
        while (len(got_a) < count or len(got_b) < count) and time.monotonic() < deadline:
            for n, got in ((a, got_a), (b, got_b)):
                try:
                    got.extend(bytes(m.data) for m in n.recv_many(256, timeout=0.05))
                except chirp.ChirpTimeoutError:
                    pass
        for t in ths:
            t.join(5)
        out["a_errors"] = results(futs["a"])[:3]
        out["b_errors"] = results(futs["b"])[:3]
        out["b_got"] = len(got_b)
        out["a_got"] = len(got_a)
        out["b_in_order"] = got_b == [b"a%06d" % i for i in range(count)]
        out["a_in_order"] = got_a == [b"b%06d" % i for i in range(count)]
        out["b_complete"] = sorted(got_b) == [b"a%06d" % i for i in range(count)]
        out["a_complete"] = sorted(got_a) == [b"b%06d" % i for i in range(count)]
        # where the order breaks first, for the report
        for key, got in (("a", got_a), ("b", got_b)):
            nums = [int(g[1:]) for g in got]
            bad = [i for i in range(1, len(nums)) if nums[i] < nums[i - 1]]
            out[key + "_disorder"] = {
                "breaks": len(bad),
                "first": [nums[max(0, j - 2) : j + 2] for j in bad[:3]],
            }
    emit(kind="result", **out)


def sc_stall(p):
    """A receiver with one slot that holds each message a moment: its
    connection stops reading with ciphertext still buffered, again and
    again, and goes on from there; every message arrives intact, in order."""
    sizes = (10, 20_000, 300, 300_000, 5)
    count = p.get("count", 120)
    out = {}
    with (
        node(p, "a", synchronous=False) as a,
        node(p, "b", synchronous=False, max_slots=1, auto_release=p["auto_release"]) as b,
    ):
        futs = [a.send_async(to(b), pattern(sizes[i % len(sizes)], seed=i)) for i in range(count)]
        ok = 0
        for i in range(count):
            try:
                m = b.recv(timeout=10)
            except chirp.ChirpTimeoutError:
                break
            if bytes(m.data) == pattern(sizes[i % len(sizes)], seed=i):
                ok += 1
            if i % 7 == 0:
                time.sleep(0.02)  # the sender fills TCP meanwhile
            m.release()
        out["intact_in_order"] = ok
        out["errors"] = results(futs)[:3]
    emit(kind="result", **out)


def sc_restart(p):
    """The receiver goes away and comes back on the same port: the sender
    gets an error meanwhile and then a fresh TLS connection works."""
    out = {}
    with node(p, "a", synchronous=True, timeout=2.0) as a:
        b = node(p, "b", synchronous=False)
        port = b.port
        try:
            fut = a.send_async(to(b), b"first")
            out["first"] = bytes(b.recv(timeout=5).data) == b"first"
            fut.result(timeout=5)
        finally:
            b.close()
        time.sleep(0.2)
        out["while_down"] = send_and_fail(a, (ADDRESS, port), timeout=10)
        with node(p, "b", synchronous=False, port=port) as b2:
            oks = []
            for i in range(3):
                fut = a.send_async(to(b2), b"again %d" % i)
                try:
                    m = b2.recv(timeout=5)
                    fut.result(timeout=5)
                    oks.append(bytes(m.data) == b"again %d" % i)
                except Exception as e:
                    oks.append(err_info(e))
            out["after_restart"] = oks
            # and the other way round, over the connection a just opened
            out["reverse"] = good_exchange(b2, a, data=b"back")
    emit(kind="result", **out)


def sc_idle(p):
    """Idle TLS connections: after 3/4 of the reuse time a NOOP precedes the
    next message, after max(reuse_time, 3 x timeout) the connection is
    closed; messages keep arriving across both."""
    out = {"steps": []}
    kw = dict(timeout=0.4, reuse_time=1.0)  # connections idle out after 1.2 s
    with node(p, "a", synchronous=True, **kw) as a, node(p, "b", synchronous=False, **kw) as b:
        for i, pause in enumerate([0.0, 1.0, 2.0, 0.1]):
            time.sleep(pause)
            data = b"step %d" % i
            t0 = time.monotonic()
            fut = a.send_async(to(b), data, header=b"idle")
            try:
                m = b.recv(timeout=5)
                fut.result(timeout=5)
                ok = bytes(m.data) == data
                step = {"ok": ok, "secs": time.monotonic() - t0}
            except Exception as e:
                step = {"ok": False, "error": err_info(e)}
            out["steps"].append(step)
        out["nothing_else"] = expect_nothing(b, wait=0.2)
    emit(kind="result", **out)


# --------------------------------------------------------------------------
# rejections


def sc_reject_other_ca(p):
    other = p["other"]
    out = {}
    with (
        node(p, "b", synchronous=True, timeout=3.0) as b,
        node(other, "x", synchronous=True, timeout=3.0) as x,
        node(p, "a", synchronous=False) as a,
    ):
        out["x_to_b"] = send_and_fail(x, to(b))
        out["b_got_nothing"] = expect_nothing(b)
        out["b_to_x"] = send_and_fail(b, to(x))
        out["x_got_nothing"] = expect_nothing(x, wait=0.2)
        out["good_after"] = good_exchange(a, b)
        # the same rejected node again: still rejected, no stale state
        out["x_to_b_again"] = send_and_fail(x, to(b))
        out["b_got_nothing_again"] = expect_nothing(b, wait=0.3)
        out["good_after_again"] = good_exchange(a, b, data=b"again")
    emit(kind="result", **out)


def sc_reject_no_cert(p):
    out = {}
    lst = socket.socket()
    lst.bind(("0.0.0.0", 0))
    lst.listen(8)
    lst.settimeout(0.3)
    try:
        with (
            node(p, None, synchronous=True, timeout=5.0) as n,
            node(p, "b", synchronous=False, timeout=5.0) as b,
            node(p, "a", synchronous=False) as a,
        ):
            # to a plain listening socket: must fail without even connecting
            out["to_listener"] = send_and_fail(n, (ADDRESS, lst.getsockname()[1]))
            try:
                c, peer = lst.accept()
                c.close()
                out["listener_saw_connection"] = True
            except TimeoutError:
                out["listener_saw_connection"] = False
            # to a TLS node
            out["to_tls_node"] = send_and_fail(n, to(b))
            out["b_got_nothing"] = expect_nothing(b, wait=0.3)
            # a TLS node connecting to the node without certificate
            out["tls_to_no_cert"] = send_and_fail(b, to(n), timeout=10)
            out["n_got_nothing"] = expect_nothing(n, wait=0.3)
            # loopback stays plaintext, so that still works without certificate
            fut = n.send_async(("127.0.0.1", b.port), b"over loopback", header=b"lo")
            try:
                m = b.recv(timeout=5)
                fut.result(timeout=5)
                out["loopback_ok"] = bytes(m.data) == b"over loopback"
            except Exception as e:
                out["loopback_ok"] = False
                out["loopback_error"] = err_info(e)
            out["good_after"] = good_exchange(a, b)
    finally:
        lst.close()
    emit(kind="result", **out)


def sc_reject_plaintext_sender(p):
    out = {}
    with (
        node(p, "b", synchronous=True) as b,
        node(p, None, synchronous=True, timeout=3.0, disable_encryption=True) as pt,
        node(p, "a", synchronous=False) as a,
    ):
        out["pt_to_b"] = send_and_fail(pt, to(b))
        out["b_got_nothing"] = expect_nothing(b)
        out["good_after"] = good_exchange(a, b)
        # and once more, while b has a live TLS connection to a
        out["pt_to_b_again"] = send_and_fail(pt, to(b))
        out["b_got_nothing_again"] = expect_nothing(b, wait=0.3)
        out["good_after_again"] = good_exchange(a, b, data=b"twice")
        out["b_to_a_ok"] = good_exchange(b, a, data=b"reverse")
    emit(kind="result", **out)


def sc_reject_plaintext_receiver(p):
    out = {}
    with (
        node(p, None, synchronous=False, disable_encryption=True) as r,
        node(p, "a", synchronous=True, timeout=3.0) as a,
        node(p, None, synchronous=False, disable_encryption=True) as q,
    ):
        out["a_to_r"] = send_and_fail(a, to(r))
        out["r_got_nothing"] = expect_nothing(r)
        # the plaintext receiver still serves a plaintext peer
        out["plain_after"] = good_exchange(q, r)
    emit(kind="result", **out)


# --------------------------------------------------------------------------
# raw sockets against a TLS node


def wait_closed(sock, timeout, since=None):
    """Read until EOF/reset, at most ``timeout`` s from ``since`` (default:
    now); returns (closed?, seconds since ``since``, bytes received)."""
    t0 = time.monotonic() if since is None else since
    got = b""
    sock.settimeout(0.1)
    while time.monotonic() - t0 < timeout:
        try:
            b = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return True, time.monotonic() - t0, got
        if not b:
            return True, time.monotonic() - t0, got
        got += b
    return False, time.monotonic() - t0, got


def raw_connect(port):
    s = socket.create_connection((ADDRESS, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


RAW_INPUTS = {
    # not TLS at all
    "http": b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    # a plaintext chirp handshake instead of a ClientHello
    "chirp_plain": struct.pack(">H16s", 1234, b"P" * 16),
    # a handshake record full of garbage
    "bad_record": b"\x16\x03\x01\x00\x40" + bytes(range(64)),
    # a record type that does not exist
    "bad_type": b"\x63\x03\x03\x00\x05hello",
    # an oversized record length
    "huge_record": b"\x16\x03\x01\xff\xff" + b"\x00" * 100,
}


def sc_raw(p):
    """Raw bytes at a TLS node: the connection is closed, nothing delivered,
    the node still serves a good peer."""
    variant = p["variant"]
    out = {"variant": variant}
    with node(p, "b", synchronous=False, timeout=1.0) as b, node(p, "a", synchronous=False) as a:
        t0 = time.monotonic()
        s = raw_connect(b.port)
        try:
            if variant in RAW_INPUTS:
                s.sendall(RAW_INPUTS[variant])
                closed, secs, got = wait_closed(s, 5)
                out.update(closed=closed, secs=secs, replied=got.hex()[:80])
            elif variant == "half_header_close":
                # 3 bytes of a ClientHello record header, then close
                s.sendall(b"\x16\x03\x01")
                time.sleep(0.1)
                s.close()
            elif variant == "short_record_close":
                # a record that announces 1000 bytes, 10 of them, then close
                s.sendall(b"\x16\x03\x01\x03\xe8" + b"\x01" * 10)
                time.sleep(0.1)
                s.close()
            elif variant == "half_header_stall":
                s.sendall(b"\x16\x03\x01")
                closed, secs, got = wait_closed(s, 6)
                out.update(closed=closed, secs=secs, replied=got.hex()[:80])
            elif variant == "short_record_stall":
                s.sendall(b"\x16\x03\x01\x03\xe8" + b"\x01" * 10)
                closed, secs, got = wait_closed(s, 6)
                out.update(closed=closed, secs=secs, replied=got.hex()[:80])
            elif variant == "silent":
                # several clients that connect and never speak; a good peer
                # is served while they hang, then they are all closed
                others = [raw_connect(b.port) for _ in range(9)]
                try:
                    t1 = time.monotonic()
                    out["good_during"] = good_exchange(a, b, data=b"during")
                    out["good_during_secs"] = time.monotonic() - t1
                    # seconds from opening to being closed by the node
                    results = [wait_closed(c, 8, since=t0) for c in [s] + others]
                finally:
                    for c in others:
                        c.close()
                out["closed"] = all(r[0] for r in results)
                out["n_closed"] = sum(1 for r in results if r[0])
                out["secs"] = max(r[1] for r in results)
                out["min_secs"] = min(r[1] for r in results)
                out["replied"] = "".join(r[2].hex() for r in results)[:80]
            else:
                raise SystemExit(f"unknown variant {variant}")
        finally:
            s.close()
        out["total_secs"] = time.monotonic() - t0
        out["nothing_delivered"] = expect_nothing(b, wait=0.3)
        out["good_after"] = good_exchange(a, b)
    emit(kind="result", **out)


# --------------------------------------------------------------------------
# Python's ssl module as a raw TLS client


HANDSHAKE = struct.Struct(">H16s")
MSG_HEADER = struct.Struct(">16sIIHB")


def recv_exact(s, n, timeout=5.0):
    s.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += b
    return buf


def client_ctx(p, name, max_version=None, min_version=None, ciphers=None, cert=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # node certificates name nodes, not addresses
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(p["ca"])
    if cert:
        ctx.load_cert_chain(p[name])  # cert, CA cert and key in one file
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def sc_pyssl(p):
    variant = p["variant"]
    out = {"variant": variant}
    with node(p, "b", synchronous=False, timeout=2.0) as b, node(p, "a", synchronous=False) as a:
        if variant in ("tls12_dhe", "tls13"):
            if variant == "tls12_dhe":
                ctx = client_ctx(
                    p,
                    "c",
                    max_version=ssl.TLSVersion.TLSv1_2,
                    ciphers="DHE-RSA-AES128-GCM-SHA256",
                )
            else:
                ctx = client_ctx(p, "c", min_version=ssl.TLSVersion.TLSv1_3)
            raw = raw_connect(b.port)
            with ctx.wrap_socket(raw, server_hostname=None) as s:
                s.settimeout(5)
                s.do_handshake()
                out["version"] = s.version()
                out["cipher"] = s.cipher()[0]
                port, ident = HANDSHAKE.unpack(recv_exact(s, HANDSHAKE.size))
                out["hs_port_ok"] = port == b.port
                out["hs_identity_ok"] = ident == b.identity
                my_ident = bytes(range(16))
                msg_id = b"M" * 16
                header, data = b"py-header", b"hello from python ssl" * 100
                s.sendall(
                    HANDSHAKE.pack(4321, my_ident)
                    + MSG_HEADER.pack(msg_id, 1, len(data), len(header), 0)
                    + header
                    + data
                )
                m = b.recv(timeout=5)
                out["delivered"] = {
                    "data_ok": bytes(m.data) == data,
                    "header_ok": bytes(m.header) == header,
                    "identity_ok": m.identity == msg_id,
                    "remote_identity_ok": m.remote_identity == my_ident,
                    "port": m.port,
                    "address": m.address,
                }
                # a second message with REQ_ACK: the node acknowledges it
                s.sendall(MSG_HEADER.pack(b"N" * 16, 2, 3, 0, 1) + b"abc")
                m2 = b.recv(timeout=5)
                out["second_ok"] = bytes(m2.data) == b"abc"
                ack = recv_exact(s, MSG_HEADER.size)
                ident2, _serial, dlen, hlen, typ = MSG_HEADER.unpack(ack)
                out["ack"] = {"identity_ok": ident2 == b"N" * 16, "type": typ, "len": dlen + hlen}
        elif variant in ("tls11", "no_client_cert", "other_ca_client"):
            if variant == "tls11":
                ctx = client_ctx(
                    p,
                    "c",
                    min_version=ssl.TLSVersion.TLSv1_1,
                    max_version=ssl.TLSVersion.TLSv1_1,
                    ciphers="DEFAULT:@SECLEVEL=0",
                )
            elif variant == "no_client_cert":
                ctx = client_ctx(p, "c", cert=False)
            else:
                ctx = client_ctx(p["other"], "x")
                ctx.load_verify_locations(p["ca"])  # it trusts b, b must not trust it
            raw = raw_connect(b.port)
            t0 = time.monotonic()
            try:
                with ctx.wrap_socket(raw, server_hostname=None) as s:
                    s.settimeout(5)
                    s.do_handshake()
                    out["client_handshake_done"] = True
                    out["version"] = s.version()
                    # with TLS 1.3 the server's verdict on our certificate
                    # comes after the client finished: the node must not
                    # send its chirp handshake, and must close
                    try:
                        got = recv_exact(s, HANDSHAKE.size)
                        out["got_chirp_handshake"] = True
                        out["got"] = got.hex()
                    except (ssl.SSLError, OSError, ConnectionError) as e:
                        out["got_chirp_handshake"] = False
                        out["error"] = err_info(e)
            except (ssl.SSLError, OSError) as e:
                out["client_handshake_done"] = False
                out["error"] = err_info(e)
            out["secs"] = time.monotonic() - t0
        else:
            raise SystemExit(f"unknown variant {variant}")
        out["nothing_else_delivered"] = expect_nothing(b, wait=0.3)
        out["good_after"] = good_exchange(a, b)
    emit(kind="result", **out)


SCENARIOS = {
    "roundtrip": sc_roundtrip,
    "echo": sc_echo,
    "twoproc": sc_twoproc,
    "wiretap": sc_wiretap,
    "crossfire": sc_crossfire,
    "stall": sc_stall,
    "restart": sc_restart,
    "idle": sc_idle,
    "reject_other_ca": sc_reject_other_ca,
    "reject_no_cert": sc_reject_no_cert,
    "reject_plaintext_sender": sc_reject_plaintext_sender,
    "reject_plaintext_receiver": sc_reject_plaintext_receiver,
    "raw": sc_raw,
    "pyssl": sc_pyssl,
}


def main():
    name = sys.argv[1]
    params = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    SCENARIOS[name](params)


if __name__ == "__main__":
    main()
