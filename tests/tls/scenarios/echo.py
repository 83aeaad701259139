"""The peer process of the two-process scenario: answers every message
with its data and header until its stdin closes, then prints
``{"kind": "done", ...}``.  It first prints ``{"kind": "ready", "port": P,
"identity": HEX}``."""

import sys
import threading

import chirp
from tls.scenario import emit, err_info, node


def run(p):
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
