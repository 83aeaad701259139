#!/usr/bin/env python3
"""A chirp node in a separate process, for the API tests.

Run as a script (``python tests/peer.py MODE [options]``):

echo     reply to every message with the same data and header, then release it.
sink     receive messages (``--count N``, 0 = until stopped) and print one JSON
         line per message (len, sha256, header, serial, identity,
         remote_identity, port, address, num) -- or append them to ``--log``.
send     send ``--count`` numbered messages to ``--target HOST:PORT``
         (``--concurrent``: all at once with send_async), print one JSON
         summary line.
request  send ``--count`` numbered requests to ``--target`` one after the
         other and print one JSON line per answer.

Every mode prints ``READY <port>`` once its node listens, prints
``{"kind": "done", ...}`` when its work is finished, and exits on SIGTERM, when
done, or after ``--lifetime`` seconds at the latest (exit code 3), so a test
can never hang on it.

Imported as a module (by the tests) it provides the wire-independent helpers
``numbered``/``number_of``/``pattern`` and ``PeerProcess``, the controller
used by the tests to start, read and stop such a process.  Importing it does
not import chirp.
"""

import argparse
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.abspath(__file__)


# --------------------------------------------------------------------------
# payload helpers (shared by the tests and the script)


def pattern(size, seed=0):
    """Deterministic, non-trivial bytes of the given size."""
    if size <= 0:
        return b""
    block = bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(4096))
    reps = size // len(block) + 1
    return (block * reps)[:size]


def numbered(i, size=16):
    """A payload that starts with the decimal number ``i`` (10 digits)."""
    head = b"%010d" % i
    if size <= len(head):
        return head
    return head + pattern(size - len(head), seed=i)


def number_of(data):
    """The number encoded by ``numbered``, or None."""
    head = bytes(data[:10])
    if len(head) == 10 and head.isdigit():
        return int(head)
    return None


def record(msg):
    """A JSON-serialisable description of a received chirp message."""
    data = bytes(msg.data)
    return {
        "kind": "msg",
        "len": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "header": bytes(msg.header).hex(),
        "serial": msg.serial,
        "identity": bytes(msg.identity).hex(),
        "remote_identity": bytes(msg.remote_identity).hex(),
        "port": msg.port,
        "address": msg.address,
        "num": number_of(data),
    }


# --------------------------------------------------------------------------
# controller used by the tests


class PeerError(AssertionError):
    pass


class PeerProcess:
    """Start ``peer.py`` in a child process and talk to it through its stdout.

    Never blocks without a timeout; ``stop()`` always ends the child.
    """

    def __init__(self, mode, *args, ready_timeout=20.0, env=None):
        cmd = [sys.executable, "-u", SCRIPT, mode, *[str(a) for a in args]]
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        self._lines = queue.Queue()
        self._stderr = []
        self._out_thread = threading.Thread(
            target=self._pump, args=(self.proc.stdout, self._lines.put, True), daemon=True
        )
        self._err_thread = threading.Thread(
            target=self._pump, args=(self.proc.stderr, self._stderr.append, False), daemon=True
        )
        self._out_thread.start()
        self._err_thread.start()
        self.port = None
        try:
            line = self.readline(ready_timeout)
        except Exception:
            self.stop()
            raise
        if not line.startswith("READY "):
            self.stop()
            raise PeerError(f"peer did not print READY but {line!r}; stderr:\n{self.stderr}")
        self.port = int(line.split()[1])

    @staticmethod
    def _pump(stream, put, mark_eof):
        try:
            for line in stream:
                put(line.rstrip("\n"))
        except Exception:  # pragma: no cover - stream closed under us
            pass
        finally:
            if mark_eof:
                put(None)

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    @property
    def stderr(self):
        return "\n".join(self._stderr)

    def readline(self, timeout):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise PeerError(
                f"no output from peer within {timeout:.1f} s (cmd {self.cmd}); "
                f"stderr:\n{self.stderr}"
            ) from None
        if line is None:
            self._lines.put(None)  # keep EOF visible for later reads
            rc = self.proc.wait(timeout=5)
            raise PeerError(
                f"peer exited (rc {rc}) before the expected output; stderr:\n{self.stderr}"
            )
        return line

    def read_json(self, timeout, kind=None):
        """Next JSON line (of the given kind), skipping anything else."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerError(
                    "no {} line from peer within {:.1f} s; stderr:\n{}".format(
                        kind or "JSON", timeout, self.stderr
                    )
                )
            line = self.readline(left)
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if kind is None or obj.get("kind") == kind:
                return obj

    def read_records(self, n, timeout):
        """``n`` message records, within ``timeout`` seconds in total."""
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            out.append(self.read_json(max(0.01, deadline - time.monotonic()), kind="msg"))
        return out

    def wait(self, timeout):
        """Wait for the child to exit by itself; return its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PeerError(
                f"peer did not exit within {timeout:.1f} s; stderr:\n{self.stderr}"
            ) from None

    def stop(self):
        """SIGTERM, then SIGKILL; always returns with the child gone."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:
                pass
        return self.proc.returncode


# --------------------------------------------------------------------------
# the script

_stop = threading.Event()


def _on_sigterm(signum, frame):
    _stop.set()
    # if the main thread is stuck somewhere, do not outlive the test
    t = threading.Timer(5.0, os._exit, (0,))
    t.daemon = True
    t.start()


def _watchdog(lifetime):
    if _stop.wait(lifetime):
        return
    sys.stderr.write(f"peer: lifetime of {lifetime:.1f} s exceeded, exiting\n")
    sys.stderr.flush()
    os._exit(3)


def _emit(obj, log=None):
    line = json.dumps(obj, sort_keys=True)
    if log is not None:
        log.write(line + "\n")
        log.flush()
    else:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _target(text):
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


def _parse(argv):
    p = argparse.ArgumentParser(prog="peer.py")
    p.add_argument("mode", choices=["echo", "sink", "send", "request"])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--identity", default=None, help="hex, 16 bytes")
    p.add_argument("--async", dest="synchronous", action="store_false", default=True)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--max-slots", type=int, default=None)
    p.add_argument("--max-msg-size", type=int, default=None)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--target", default=None)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--header", default="", help="hex")
    p.add_argument("--concurrent", action="store_true")
    p.add_argument("--log", default=None)
    p.add_argument("--lifetime", type=float, default=60.0)
    p.add_argument(
        "--delay", type=float, default=0.0, help="sink: seconds to wait before each release"
    )
    p.add_argument(
        "--linger", type=float, default=0.0, help="send/request: keep the node this long after done"
    )
    return p.parse_args(argv)


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    threading.Thread(target=_watchdog, args=(args.lifetime,), daemon=True).start()

    import chirp  # only the script needs chirp

    kw = dict(
        port=args.port, synchronous=args.synchronous, timeout=args.timeout, disable_encryption=True
    )
    if args.identity:
        kw["identity"] = bytes.fromhex(args.identity)
    if args.max_slots is not None:
        kw["max_slots"] = args.max_slots
    if args.max_msg_size is not None:
        kw["max_msg_size"] = args.max_msg_size
    header = bytes.fromhex(args.header)
    log = open(args.log, "a") if args.log else None

    node = chirp.Node(**kw)
    rc = 0
    try:
        sys.stdout.write(f"READY {node.port}\n")
        sys.stdout.flush()
        if args.mode == "echo":
            rc = _run_echo(node, args)
        elif args.mode == "sink":
            rc = _run_sink(node, args, log)
        elif args.mode == "send":
            rc = _run_send(node, args, header)
        elif args.mode == "request":
            rc = _run_request(node, args, header)
        if args.linger > 0:
            _stop.wait(args.linger)
    finally:
        try:
            node.close()
        finally:
            if log is not None:
                log.close()
    _stop.set()
    sys.stdout.flush()
    return rc


def _run_echo(node, args):
    n = 0
    errors = 0
    while not _stop.is_set() and (args.count <= 0 or n < args.count):
        try:
            msg = node.recv(timeout=0.2)
        except TimeoutError:
            continue
        try:
            node.reply(msg, msg.data, header=msg.header)
        except Exception as exc:  # report, keep serving
            errors += 1
            _emit({"kind": "error", "op": "reply", "error": repr(exc)})
        finally:
            msg.release()
        n += 1
    _emit({"kind": "done", "echoed": n, "errors": errors})
    return 0


def _run_sink(node, args, log):
    n = 0
    while not _stop.is_set() and (args.count <= 0 or n < args.count):
        try:
            msg = node.recv(timeout=0.2)
        except TimeoutError:
            continue
        try:
            _emit(record(msg), log)
            if args.delay > 0:
                _stop.wait(args.delay)
        finally:
            msg.release()
        n += 1
    _emit({"kind": "done", "received": n})
    return 0


def _run_send(node, args, header):
    target = _target(args.target)
    errors = []
    ok = 0
    t0 = time.monotonic()
    if args.concurrent:
        futs = [
            node.send_async(target, numbered(i, args.size), header=header)
            for i in range(args.count)
        ]
        wait_until = time.monotonic() + args.timeout * 3 + 30
        for i, fut in enumerate(futs):
            try:
                fut.result(timeout=max(0.01, wait_until - time.monotonic()))
                ok += 1
            except Exception as exc:
                errors.append([i, repr(exc)])
    else:
        for i in range(args.count):
            if _stop.is_set():
                break
            try:
                node.send(target, numbered(i, args.size), header=header)
                ok += 1
            except Exception as exc:
                errors.append([i, repr(exc)])
    _emit(
        {
            "kind": "done",
            "sent": ok,
            "nerrors": len(errors),
            "errors": errors[:10],
            "seconds": time.monotonic() - t0,
        }
    )
    return 0


def _run_request(node, args, header):
    target = _target(args.target)
    errors = []
    for i in range(args.count):
        if _stop.is_set():
            break
        try:
            ans = node.request(
                target, numbered(i, args.size), header=header, timeout=args.timeout * 2
            )
        except Exception as exc:
            errors.append([i, repr(exc)])
            continue
        rec = record(ans)
        rec["kind"] = "answer"
        rec["i"] = i
        _emit(rec)
    _emit({"kind": "done", "nerrors": len(errors), "errors": errors[:10]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
