"""A libchirp 1.2.1 node used as a black-box peer by chirp's interop tests.

Run it with the python of the libchirp virtualenv (see setup_libchirp.sh).
It listens on --port and prints ``READY <port> <identity-hex>`` on stdout once
the node is up. Every other stdout line is one JSON object. Diagnostics go to
stderr.

Modes:

echo   reply to every message with the same data and header (libchirp's
       reply: send the received message object back, so it keeps its
       identity and goes to msg.address/msg.port). One JSON line
       ``{"event": "echo", ...}`` per message, printed once the reply is
       sent (``send_error`` when it failed). Runs until SIGTERM/SIGINT, or
       until --count messages were echoed when --count > 0. Release order:
       see --release-order.
sink   receive --count messages (each released, so ACKed, as it is taken),
       print ``{"event": "recv", ...}`` for each, then ``{"event": "done"}``
       and exit. Exits with 3 if fewer than --count arrived within --wait s.
send   send --count messages to --target, data and header made by
       digest_payload() (or --data-hex/--header-hex), print ``{"event": "result", ...}``
       and exit (0 when every send succeeded and, with --expect-reply, every
       reply matched; 1 otherwise). Replies are matched by identity; anything
       else that arrives is listed under "unexpected".

Exit codes: 0 ok, 1 send failures/mismatches, 2 error (also printed as
``{"event": "error"}``), 3 sink short of messages, 4 hard exit on hung
shutdown.

The payload of message i (0-based) is ``digest_payload(i, size, b"D")``, its
header ``digest_payload(i, header_size, b"H")`` (support/payloads.py, which
the tests use too).  Run as ``python -m interop.libchirp_peer`` with tests/
on PYTHONPATH (support.child does that).
"""

import argparse
import binascii
import concurrent.futures
import hashlib
import json
import os
import queue as pyqueue
import signal
import sys
import threading
import time

from support.payloads import digest_payload


def hexs(b):
    return binascii.hexlify(bytes(b)).decode("ascii")


def out(obj):
    """Print one line on stdout (thread-safe, flushed)."""
    line = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


_out_lock = threading.Lock()


def err(*args):
    print("[libchirp_peer %d]" % os.getpid(), *args, file=sys.stderr, flush=True)


def describe(msg, index=None, inline_max=256):
    data = bytes(msg.data or b"")
    header = bytes(msg.header or b"")
    d = {
        "len": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "header_len": len(header),
        "header_hex": hexs(header),
        "identity": hexs(msg.identity),
        "serial": msg.serial,
        "address": msg.address,
        "port": msg.port,
        "remote_identity": hexs(msg.remote_identity),
    }
    if len(data) <= inline_max:
        d["data_hex"] = hexs(data)
    if index is not None:
        d["i"] = index
    return d


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mode", choices=("echo", "sink", "send"), required=True)
    p.add_argument("--port", type=int, required=True, help="listening port of this node")
    p.add_argument("--synchronous", type=int, choices=(0, 1), default=1)
    p.add_argument("--disable-encryption", action="store_true")
    p.add_argument("--cert", help="CERT_CHAIN_PEM file")
    p.add_argument("--dh", help="DH_PARAMS_PEM file")
    p.add_argument("--timeout", type=float, default=5.0, help="Config.TIMEOUT")
    p.add_argument("--reuse-time", type=float, default=None)
    p.add_argument("--max-slots", type=int, default=None)
    p.add_argument("--max-msg-size", type=int, default=None)
    p.add_argument("--identity", help="node identity, 32 hex digits")
    p.add_argument("--bind-v4", default=None)
    p.add_argument("--bind-v6", default=None)
    p.add_argument(
        "--count", type=int, default=0, help="messages to send/receive (echo: 0 = forever)"
    )
    p.add_argument("--target", help="HOST:PORT to send to (send mode)")
    p.add_argument("--size", type=int, default=16, help="data size (send)")
    p.add_argument("--header-size", type=int, default=0, help="header size (send)")
    p.add_argument("--data-hex", help="explicit data for every message (send)")
    p.add_argument("--header-hex", help="explicit header for every message (send)")
    p.add_argument(
        "--expect-reply",
        action="store_true",
        help="send with request() and check the replies (send)",
    )
    p.add_argument(
        "--use-request",
        action="store_true",
        help="send: use libchirp's request() instead of send() plus matching replies by identity",
    )
    p.add_argument(
        "--sequential",
        action="store_true",
        help="wait for each send/request before the next (send)",
    )
    p.add_argument(
        "--wait", type=float, default=30.0, help="overall seconds to wait for results/messages"
    )
    p.add_argument(
        "--release-order",
        choices=("auto", "before", "after"),
        default="auto",
        help="echo: release (ACK) the request before or after the "
        "reply was sent; auto = before when synchronous. A "
        "synchronous libchirp node holding its only slot stops "
        "reading, so it would never see the ACK of its reply.",
    )
    p.add_argument(
        "--linger",
        type=float,
        default=0.0,
        help="seconds to stay up after finishing (lets ACKs flush)",
    )
    return p.parse_args(argv)


def make_config(lc, args):
    config = lc.Config()
    config.PORT = args.port
    config.SYNCHRONOUS = bool(args.synchronous)
    config.DISABLE_ENCRYPTION = bool(args.disable_encryption)
    config.DISABLE_SIGNALS = True  # we handle SIGTERM/SIGINT ourselves
    config.TIMEOUT = float(args.timeout)
    if args.reuse_time is not None:
        config.REUSE_TIME = float(args.reuse_time)
    if args.max_slots is not None:
        config.MAX_SLOTS = args.max_slots
    if args.max_msg_size is not None:
        config.MAX_MSG_SIZE = args.max_msg_size
    if args.identity:
        config.IDENTITY = binascii.unhexlify(args.identity)
    if args.bind_v4:
        config.BIND_V4 = args.bind_v4
    if args.bind_v6:
        config.BIND_V6 = args.bind_v6
    if args.cert:
        config.CERT_CHAIN_PEM = args.cert
    if args.dh:
        config.DH_PARAMS_PEM = args.dh
    return config


def parse_target(target):
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    return host, int(port)


def main(argv=None):
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum, frame):
        err("signal", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    import libchirp
    import libchirp.pool
    import libchirp.queue

    loop = libchirp.Loop()
    node = None
    rc = 0
    try:
        config = make_config(libchirp, args)
        if args.mode == "echo":
            node = make_echo(libchirp, loop, config, args, stop)
        else:
            node = libchirp.queue.Chirp(loop, config)
        ident = hexs(node.identity())
        out("READY %d %s" % (args.port, ident))
        err("mode=%s port=%d sync=%d identity=%s" % (args.mode, args.port, args.synchronous, ident))
        if args.mode == "echo":
            while not stop.wait(0.1):
                pass
        elif args.mode == "sink":
            rc = run_sink(node, args, stop)
        else:
            rc = run_send(libchirp, node, args, stop)
        if args.linger > 0 and not stop.is_set():
            stop.wait(args.linger)
    except Exception as e:  # noqa: BLE001 - report everything, exit non-zero
        err(f"error: {e!r}")
        out({"event": "error", "error": repr(e)})
        rc = 2
    finally:
        shutdown(node, loop, rc)
    err("exit", rc)
    return rc


def shutdown(node, loop, rc, grace=10.0):
    """Stop node and loop; never hang: hard exit after grace seconds."""

    def watchdog():
        err(f"shutdown took more than {grace:.0f}s, hard exit")
        sys.stdout.flush()
        os._exit(rc if rc else 4)

    timer = threading.Timer(grace, watchdog)
    timer.daemon = True
    timer.start()
    try:
        if node is not None:
            node.stop()
    except Exception as e:  # noqa: BLE001 - e.g. unreleased messages
        err(f"node.stop(): {e!r}")
    try:
        loop.stop()
    except Exception as e:  # noqa: BLE001
        err(f"loop.stop(): {e!r}")
    timer.cancel()


def make_echo(libchirp, loop, config, args, stop):
    config.AUTO_RELEASE = False
    release_first = args.release_order == "before" or (
        args.release_order == "auto" and args.synchronous
    )
    counter = {"n": 0}
    lock = threading.Lock()

    class Echo(libchirp.pool.Chirp):
        # One worker thread: messages are handled in arrival order.
        def handler(self, msg):
            with lock:
                i = counter["n"]
                counter["n"] += 1
            info = describe(msg, i)
            info["event"] = "echo"

            def finish(send_error=None):
                if send_error is not None:
                    info["send_error"] = send_error
                    err("echo send failed:", send_error)
                out(info)
                if args.count and i + 1 >= args.count:
                    stop.set()

            # Reply: same message object, same data/header/identity, going
            # back to msg.address/msg.port.
            if release_first:
                # Free the slot (ACK) first and do not wait for the reply:
                # a synchronous libchirp node has one slot and stops reading
                # while it is taken, so it would not see the ACK of its reply
                # while the next request sits in the slot.
                try:
                    msg.release_slot().result(timeout=args.wait)
                    fut = self.send(msg)
                except Exception as e:  # noqa: BLE001
                    finish(f"{type(e).__name__}: {e}")
                    return

                def done(f):
                    e = f.exception()
                    finish(None if e is None else f"{type(e).__name__}: {e}")

                fut.add_done_callback(done)
            else:
                # Response before ACK: the reply is written first, then the
                # slot is released.
                error = None
                try:
                    self.send(msg).result(timeout=args.wait)
                except Exception as e:  # noqa: BLE001
                    error = f"{type(e).__name__}: {e}"
                finally:
                    msg.release_slot()
                finish(error)

    return Echo(loop, config, max_workers=1)


def run_sink(node, args, stop):
    got = 0
    deadline = time.monotonic() + args.wait
    while got < args.count and not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            msg = node.get(timeout=min(left, 0.2))
        except pyqueue.Empty:
            continue
        info = describe(msg, got)
        info["event"] = "recv"
        out(info)
        got += 1
    ok = got >= args.count
    out({"event": "done", "received": got, "expected": args.count, "ok": ok})
    return 0 if ok else 3


def run_send(libchirp, node, args, stop):
    if not args.target:
        raise SystemExit("--target is required in send mode")
    host, port = parse_target(args.target)
    deadline = time.monotonic() + args.wait

    def left():
        return max(0.01, deadline - time.monotonic())

    # Everything that arrives is taken from the queue (which releases it, so
    # it is ACKed) by this thread; replies are matched by identity here rather
    # than with libchirp's request(), which hands a reply that races its own
    # send-callback to the queue as an ordinary message.
    arrived = {}  # identity hex -> (describe dict, data, header)
    arrived_order = []
    cond = threading.Condition()
    done = threading.Event()

    def receiver():
        while not done.is_set():
            try:
                m = node.get(timeout=0.1)
            except pyqueue.Empty:
                continue
            except Exception as e:  # noqa: BLE001
                err("receiver:", repr(e))
                return
            d = describe(m)
            with cond:
                arrived.setdefault(d["identity"], (d, bytes(m.data), bytes(m.header)))
                arrived_order.append(d["identity"])
                cond.notify_all()

    rx = None
    if not args.use_request:
        rx = threading.Thread(target=receiver, name="receiver", daemon=True)
        rx.start()

    def build(i):
        msg = libchirp.queue.Message()
        data = (
            binascii.unhexlify(args.data_hex)
            if args.data_hex is not None
            else digest_payload(i, args.size, b"D")
        )
        header = (
            binascii.unhexlify(args.header_hex)
            if args.header_hex is not None
            else digest_payload(i, args.header_size, b"H")
        )
        msg.data = data
        msg.header = header
        msg.address = host
        msg.port = port
        return msg, data, header

    results = []
    errors = []
    replies = []

    def collect(i, data, header, fut, msg):
        entry = {
            "i": i,
            "len": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "header_hex": hexs(header),
        }
        ans = None
        try:
            if args.use_request and args.expect_reply:
                fut.send_result(timeout=left())
                entry["identity"] = hexs(msg.identity)
                m = fut.result(timeout=left())
                ans = (describe(m), bytes(m.data), bytes(m.header))
            else:
                fut.result(timeout=left())
                entry["identity"] = ident = hexs(msg.identity)
                if args.expect_reply:
                    with cond:
                        cond.wait_for(lambda: ident in arrived or stop.is_set(), timeout=left())
                        ans = arrived.get(ident)
                    if ans is None:
                        raise concurrent.futures.TimeoutError("no reply")
            entry["ok"] = True
        except concurrent.futures.TimeoutError as e:
            entry["ok"] = False
            entry["error"] = f"TimeoutError: {e}"
        except Exception as e:  # noqa: BLE001
            entry["ok"] = False
            entry["error"] = f"{type(e).__name__}: {e}"
        if ans is not None:
            rep, rdata, rheader = ans
            rep["i"] = i
            rep["match"] = (
                rdata == data and rheader == header and rep["identity"] == entry.get("identity")
            )
            entry["reply_match"] = rep["match"]
            replies.append(rep)
        if "identity" not in entry:
            try:
                entry["identity"] = hexs(msg.identity)
            except Exception:  # noqa: BLE001 - may not be set on failure
                pass
        if not entry["ok"]:
            errors.append(entry.get("error"))
        results.append(entry)

    t0 = time.monotonic()
    sent = []
    for i in range(args.count):
        if stop.is_set():
            break
        msg, data, header = build(i)
        if args.use_request and args.expect_reply:
            fut = node.request(msg)
        else:
            fut = node.send(msg)
        if args.sequential:
            collect(i, data, header, fut, msg)
        else:
            sent.append((i, data, header, fut, msg))
    for item in sent:
        collect(*item)
    elapsed = time.monotonic() - t0
    done.set()
    if rx is not None:
        rx.join(timeout=2.0)

    ok = sum(1 for r in results if r["ok"])
    failed = args.count - ok
    all_match = (
        len(replies) == args.count and all(r["match"] for r in replies)
        if args.expect_reply
        else None
    )
    matched = {r["identity"] for r in replies}
    with cond:
        unexpected = [arrived[k][0] for k in arrived if k not in matched]
    res = {
        "event": "result",
        "target": "%s:%d" % (host, port),
        "count": args.count,
        "ok": ok,
        "failed": failed,
        "errors": errors,
        "elapsed": elapsed,
        "messages": results,
        "unexpected": unexpected,
    }
    if args.expect_reply:
        res["replies"] = replies
        res["all_match"] = all_match
    out(res)
    success = failed == 0 and (all_match in (None, True))
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(main())
