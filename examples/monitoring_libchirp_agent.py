"""A libchirp 1.2.1 agent for examples/monitoring.py (libchirp only, no chirp).

    python monitoring_libchirp_agent.py [--malformed] HOST:PORT COUNT NAME

Sends COUNT metric readings (b"seq=3 cpu=0.42", the header naming the
agent) to the collector at HOST:PORT, one after the other, with libchirp's
queue API; libchirp is synchronous by default, so each send ends when the
collector has acknowledged the reading.  With --malformed it sends one
bad reading halfway: libchirp has no reject frame, so the rejected
reading is not acknowledged and its connection is closed; its send fails
with libchirp's own error.  Prints what happened; exits 0 when every good
reading was acknowledged (and the bad one failed)."""

import argparse
import socket
import sys

import libchirp
import libchirp.queue


def free_port() -> int:
    """A port above 1024 that is free now (libchirp has no port 0)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def start(loop: libchirp.Loop) -> libchirp.queue.Chirp:
    """A plaintext libchirp node on a free port (a few tries: ports race)."""
    for attempt in range(5):
        config = libchirp.Config()
        config.PORT = free_port()
        config.DISABLE_ENCRYPTION = True  # as the collector
        config.DISABLE_SIGNALS = True
        try:
            return libchirp.queue.Chirp(loop, config)
        except Exception:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def send(node: libchirp.queue.Chirp, to: tuple[str, int], name: str, data: bytes) -> str | None:
    """Send one reading and wait for its acknowledgement; None or the error."""
    msg = libchirp.queue.Message()
    msg.address, msg.port = to
    msg.header, msg.data = name.encode(), data
    try:
        node.send(msg).result(timeout=30)
    except Exception as e:  # libchirp's own error types
        return f"{type(e).__name__}: {e}"
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("collector", help="HOST:PORT")
    p.add_argument("count", type=int)
    p.add_argument("name")
    p.add_argument("--malformed", action="store_true", help="send one bad reading halfway")
    args = p.parse_args()
    host, _, port = args.collector.rpartition(":")
    to = (host, int(port))

    loop = libchirp.Loop()
    node = start(loop)
    acked, errors, malformed_error = 0, [], None
    try:
        for i in range(args.count):
            if args.malformed and i == args.count // 2:
                malformed_error = send(node, to, args.name, b"seq=? cpu=???")
            error = send(node, to, args.name, b"seq=%d cpu=%.2f" % (i, (i * 37 % 100) / 100))
            if error is None:
                acked += 1
            else:
                errors.append(error)
    finally:
        node.stop()
        loop.stop()
    print(f"{args.name}: {acked} of {args.count} readings acknowledged")
    for error in errors:
        print(f"{args.name}: a reading failed: {error}")
    if args.malformed:
        print(f"{args.name}: the malformed reading failed: {malformed_error}")
    ok = acked == args.count and (malformed_error is not None or not args.malformed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
