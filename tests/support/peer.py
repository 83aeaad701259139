"""A chirp node in a child process, for the API tests.

Run as ``python -m support.peer MODE [options]`` (Peer does that):

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
done, or after ``--lifetime`` seconds at the latest (exit code 3).

Imported, it provides Peer, the test's handle on such a process (a
support.child.Child).  Only the program imports chirp.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

from support.child import Child, ChildError, python
from support.net import LOCAL
from support.payloads import number_of, numbered, sha256

PeerError = ChildError


def record(msg):
    """A JSON-serialisable description of a received chirp message."""
    data = bytes(msg.data)
    return {
        "kind": "msg",
        "len": len(data),
        "sha256": sha256(data),
        "header": bytes(msg.header).hex(),
        "serial": msg.serial,
        "identity": bytes(msg.identity).hex(),
        "remote_identity": bytes(msg.remote_identity).hex(),
        "port": msg.port,
        "address": msg.address,
        "num": number_of(data),
    }


class Peer(Child):
    """``python -m support.peer MODE ARGS...`` started and READY."""

    def __init__(self, mode, *args, ready_timeout=20.0, env=None):
        super().__init__(python("support.peer", mode, *args), name=f"peer {mode}", env=env)
        try:
            self.port = int(self.expect_line("READY", ready_timeout)[0])
        except BaseException:
            self.close()
            raise

    @property
    def address(self):
        return (LOCAL, self.port)

    def read_json(self, timeout, kind=None):
        """The next JSON line (of the given kind), skipping anything else."""
        where = None if kind is None else (lambda obj: obj.get("kind") == kind)
        return super().read_json(timeout, where, f"{kind or 'JSON'} line")

    def read_records(self, n, timeout):
        """n message records, within timeout seconds in total."""
        deadline = time.monotonic() + timeout
        return [
            self.read_json(max(0.01, deadline - time.monotonic()), kind="msg") for _ in range(n)
        ]


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
    p = argparse.ArgumentParser(prog="python -m support.peer")
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


def _messages(node, count):
    """Messages as they come until stopped, or until count (if > 0) were
    taken; each is released once the caller is done with it."""
    n = 0
    while not _stop.is_set() and (count <= 0 or n < count):
        try:
            msg = node.recv(timeout=0.2)
        except TimeoutError:
            continue
        try:
            yield msg
        finally:
            msg.release()
        n += 1


def _run_echo(node, args):
    n = 0
    errors = 0
    for msg in _messages(node, args.count):
        n += 1
        try:
            node.reply(msg, msg.data, header=msg.header)
        except Exception as exc:  # report, keep serving
            errors += 1
            _emit({"kind": "error", "op": "reply", "error": repr(exc)})
    _emit({"kind": "done", "echoed": n, "errors": errors})
    return 0


def _run_sink(node, args, log):
    n = 0
    for msg in _messages(node, args.count):
        n += 1
        _emit(record(msg), log)
        if args.delay > 0:
            _stop.wait(args.delay)
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
