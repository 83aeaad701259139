"""One worker process of the benchmark: ``python bench/worker.py SPEC``.

SPEC is a JSON object; its "role" picks the worker (see ROLES).  The harness
(bench/run.py) starts these with its own python, which has chirp installed,
or, for the libchirp roles, with the libchirp virtualenv's python.

Protocol on stdout: listeners print "READY <port>" once they listen; every
worker ends with one "RESULT <json>" line.  Stream senders send one warm-up
message first (and wait for it where the API allows), then "count" messages;
stream receivers expect count + 1 and measure from the first message to the
last.  Every loop is bounded by spec["deadline"] seconds.
"""

from __future__ import annotations

import json
import os
import socket
import sys

import worker_aio
import worker_chirp
import worker_libchirp
import worker_pyzmq
import worker_router
from worker_util import emit, raise_nofile


def _w_conn_holder(spec: dict) -> dict:
    """Open spec["n"] TCP connections to the node, each sending an 18-byte
    handshake (a distinct claimed port, random identity); hold them until
    stdin closes."""
    raise_nofile(spec["n"] + 256)
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
    emit("OPEN", {"open": len(socks), "errors": errors[:3]})
    sys.stdin.read()
    for s in socks:
        s.close()
    return {"open": len(socks)}


ROLES = {
    **worker_chirp.ROLES,
    **worker_aio.ROLES,
    **worker_router.ROLES,
    **worker_pyzmq.ROLES,
    **worker_libchirp.ROLES,
    "conn-holder": _w_conn_holder,
}


def worker_main(spec_json: str) -> int:
    """Run the worker SPEC_JSON names; its result (or error) as RESULT."""
    spec = json.loads(spec_json)
    try:
        result = ROLES[spec["role"]](spec)
    except Exception as e:  # noqa: BLE001 - reported to the harness
        import traceback

        traceback.print_exc()
        emit("RESULT", {"error": f"{type(e).__name__}: {e}"})
        return 1
    emit("RESULT", result)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: worker.py SPEC_JSON (started by bench/run.py)")
    sys.exit(worker_main(sys.argv[1]))
