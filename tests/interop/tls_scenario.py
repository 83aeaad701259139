"""TLS interop scenario, run inside its own network namespace (see
test_interop_tls.py): chirp and a libchirp 1.2.1 peer over TLS on
198.18.0.1, both directions.  Prints one JSON line with what it saw.

Run as ``python -m interop.tls_scenario LIBCHIRP_PYTHON CHIRP_PEM
LIBCHIRP_PEM DH SYNC``."""

from __future__ import annotations

import json
import signal
import sys

from support.child import Child, child_env, python
from support.net import NAMESPACE_ADDRESS as ADDR
from support.net import free_port
from support.payloads import digest_payload

import chirp


def main() -> int:
    lc_python, chirp_pem, lc_pem, dh, sync_arg = sys.argv[1:6]
    sync = sync_arg == "1"
    env = child_env(preload=False)
    out: dict[str, object] = {"sync": sync}

    def peer(*args) -> Child:
        base = ["--synchronous", sync_arg, "--cert", lc_pem, "--dh", dh]
        argv = python("interop.libchirp_peer", *base, *args, interpreter=lc_python)
        return Child(argv, name="libchirp peer", env=env, stderr="inherit")

    # chirp -> libchirp echo: requests, replies matched, data/header intact
    port = free_port("0.0.0.0")
    echo = peer("--mode", "echo", "--port", port)
    try:
        out["echo_ready"] = echo.readline(20, "READY").startswith("READY")
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
        echo.send_signal(signal.SIGTERM)
        echo.wait(10)  # libchirp stops within 10 s
        echo.close()
    # libchirp -> chirp: messages arrive over TLS intact
    with chirp.Node(
        port=0, cert_chain_pem=chirp_pem, dh_params_pem=dh, bind_v6="", synchronous=False
    ) as node:
        sender = peer(
            "--mode", "send", "--port", free_port("0.0.0.0"), "--target",
            f"{ADDR}:{node.port}", "--count", "20", "--size", "3000", "--header-size", "10",
        )  # fmt: skip
        got = []
        try:
            for i in range(20):
                m = node.recv(timeout=10)
                intact = m.data == digest_payload(i, 3000, b"D") and m.header == digest_payload(
                    i, 10, b"H"
                )
                got.append((intact, m.address))
        finally:
            lines = sender.read_to_end(20)
            sender.close()
        out["received"] = got
        results = [json.loads(x) for x in lines if x.startswith("{")]
        out["sender_ok"] = [r.get("ok") for r in results if r.get("event") == "result"]
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
