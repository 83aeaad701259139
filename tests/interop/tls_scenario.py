"""TLS interop scenario, run inside its own network namespace (see
test_interop_tls.py): chirp and a libchirp 1.2.1 peer over TLS on
198.18.0.1, both directions.  Prints one JSON line with what it saw."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys

import chirp

ADDR = "198.18.0.1"


def payload(i: int, size: int, kind: bytes) -> bytes:
    """What libchirp_peer.py sends as message i (same formula)."""
    block = hashlib.sha256(kind + b":%d" % i).digest()
    return (block * (size // len(block) + 1))[:size]


def free_port() -> int:
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main() -> int:
    lc_python, peer, chirp_pem, lc_pem, dh, sync_arg = sys.argv[1:7]
    sync = sync_arg == "1"
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    out: dict[str, object] = {"sync": sync}
    base = [lc_python, peer, "--synchronous", sync_arg, "--cert", lc_pem, "--dh", dh]
    # chirp -> libchirp echo: requests, replies matched, data/header intact
    port = free_port()
    echo = subprocess.Popen(
        base + ["--mode", "echo", "--port", str(port)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        ready = echo.stdout.readline() if echo.stdout else ""
        out["echo_ready"] = ready.startswith("READY")
        with chirp.Node(
            port=0, cert_chain_pem=chirp_pem, dh_params_pem=dh, bind_v6="", synchronous=sync
        ) as node:
            answers = []
            for i, size in enumerate([0, 1, 1000, 100_000]):
                data = bytes([i]) * size
                r = node.request((ADDR, port), data, header=b"h%d" % i, timeout=10)
                answers.append(r.data == data and r.header == b"h%d" % i and r.address == ADDR)
            out["echo_answers"] = answers
    finally:
        echo.terminate()
        echo.wait(timeout=10)
    # libchirp -> chirp: messages arrive over TLS intact
    with chirp.Node(
        port=0, cert_chain_pem=chirp_pem, dh_params_pem=dh, bind_v6="", synchronous=False
    ) as node:
        sender = subprocess.Popen(
            base + ["--mode", "send", "--port", str(free_port()), "--target",
                    f"{ADDR}:{node.port}", "--count", "20", "--size", "3000",
                    "--header-size", "10"],
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        got = []
        try:
            for i in range(20):
                m = node.recv(timeout=10)
                intact = m.data == payload(i, 3000, b"D") and m.header == payload(i, 10, b"H")
                got.append((intact, m.address))
        finally:
            result_lines = sender.communicate(timeout=20)[0].splitlines()
        out["received"] = got
        results = [json.loads(x) for x in result_lines if x.startswith("{")]
        out["sender_ok"] = [r.get("ok") for r in results if r.get("event") == "result"]
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
