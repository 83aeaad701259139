"""A consumer process for the fault tests.

An asynchronous chirp node with auto_release=False: for every message it
appends ``data + b"\\n"`` to the log file (one O_APPEND write, so a line is
never interleaved), and only then releases the message (which sends the ACK
a synchronous sender waits for).  Prints ``READY <port>`` once listening.

Run as ``python -m faults.fault_consumer`` (kit.ConsumerProcess does).
"""

import argparse
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", required=True)
    ap.add_argument("--max-slots", type=int, default=16)
    ap.add_argument("--synchronous", action="store_true")
    ap.add_argument("--timeout", type=float, default=5.0)
    a = ap.parse_args()

    import chirp

    try:
        node = chirp.Node(
            port=a.port,
            synchronous=a.synchronous,
            auto_release=False,
            max_slots=a.max_slots,
            timeout=a.timeout,
            disable_encryption=True,
            bind_v4="127.0.0.1",
            bind_v6="",
        )
    except Exception as e:  # the port may be briefly unavailable: parent retries
        print(f"FAILED {type(e).__name__}: {e}", flush=True)
        return 2
    fd = os.open(a.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    print(f"READY {node.port}", flush=True)
    with node:
        while True:
            try:
                msgs = node.recv_many(64, timeout=0.5)
            except TimeoutError:
                msgs = []
            for m in msgs:
                # the number (data may be padded with dots after it) ...
                os.write(fd, bytes(m.data).split(b".", 1)[0] + b"\n")
                m.release()  # ... is logged before the release (the ACK)


if __name__ == "__main__":
    sys.exit(main())
