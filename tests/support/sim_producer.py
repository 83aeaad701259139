"""A synchronous producer for the simulated-host tests (tests/sim):

    python -m support.sim_producer HOST:PORT [--cert PEM] [--timeout S]

Reads commands on stdin, one a line, and prints a line per result:
``send N`` sends N messages one after the other (each blocking);
``stream SECONDS INTERVAL`` sends one every INTERVAL s for SECONDS;
``batch N [PREFIX]`` sends N at once (prints ``WRITTEN`` once they are handed to
the node) and waits for all; ``stats`` prints the node's counters as
JSON; ``quit`` ends.  A result is ``R <data> ok <secs>`` or ``R <data>
<ErrorName> <secs>``; each command ends with ``END``.  Data are
``m-<n>`` (batch: PREFIX first), n counting from 0 over the whole run."""

from __future__ import annotations

import argparse
import json
import sys
import time

import chirp


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("target")
    p.add_argument("--cert")
    p.add_argument("--timeout", type=float, default=5.0)
    args = p.parse_args()
    host, port = args.target.rsplit(":", 1)
    to = (host, int(port))
    node = chirp.Node(port=0, synchronous=True, timeout=args.timeout, cert_chain_pem=args.cert)
    n = 0

    def out(data: bytes, err: BaseException | None, t0: float) -> None:
        what = "ok" if err is None else type(err).__name__
        print(f"R {data.decode()} {what} {time.monotonic() - t0:.3f}", flush=True)

    def one(prefix: bytes = b"") -> None:
        nonlocal n
        data = b"%sm-%d" % (prefix, n)
        n += 1
        t0 = time.monotonic()
        try:
            node.send(to, data)
            out(data, None, t0)
        except chirp.ChirpError as e:
            out(data, e, t0)

    print("READY", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        if cmd[0] == "send":
            for _ in range(int(cmd[1])):
                one()
        elif cmd[0] == "stream":
            end = time.monotonic() + float(cmd[1])
            while time.monotonic() < end:
                t0 = time.monotonic()
                one()
                time.sleep(max(0.0, float(cmd[2]) - (time.monotonic() - t0)))
        elif cmd[0] == "batch":
            t0 = time.monotonic()
            prefix = cmd[2].encode() if len(cmd) > 2 else b""
            datas = [b"%sm-%d" % (prefix, n + i) for i in range(int(cmd[1]))]
            n += len(datas)
            futs = [node.send_async(to, d) for d in datas]
            print("WRITTEN", flush=True)
            for d, f in zip(datas, futs, strict=True):
                out(d, f.exception(timeout=10 * args.timeout + 30), t0)
        elif cmd[0] == "stats":
            print(json.dumps(node.stats()), flush=True)
        print("END", flush=True)
    node.close(linger=0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
