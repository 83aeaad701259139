"""Fixtures for the fault-injection tests (tests/faults).

These tests prove chirp's failure semantics: in synchronous mode a send
succeeds only if the receiver got (and released) the message, every send
completes, and nothing hangs.

Rules: every node uses port 0 (or a port a test owns), every wait is
bounded, every node/process/proxy/socket is closed in a finalizer, and a
watchdog dumps all stacks and ends the run if a test hangs anyway.

Environment:
  CHIRP_SOAK_SECONDS   run the kill test that long (default: a short CI run)
  CHIRP_FAULT_SEED     replay the random choices of a failed run
"""

import faulthandler
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import faultkit  # noqa: E402

SOAK_SECONDS = float(os.environ.get("CHIRP_SOAK_SECONDS", "0") or 0)
# Per-test hang limit; a soak run gets its duration on top.
HANG_LIMIT = float(os.environ.get("CHIRP_FAULT_HANG_LIMIT", "120")) + SOAK_SECONDS


@pytest.fixture(autouse=True)
def _hang_guard():
    """Overrides the suite-wide guard of the same name for this directory,
    so that a long soak run (CHIRP_SOAK_SECONDS) is not cut short."""
    faulthandler.dump_traceback_later(HANG_LIMIT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _close_quietly(x):
    try:
        x.close()
    except Exception:
        pass


@pytest.fixture
def make_node():
    """make_node(**kw) -> chirp.Node on 127.0.0.1, port 0, plaintext;
    closed after the test."""
    import chirp

    nodes = []

    def make(**kw):
        kw.setdefault("port", 0)
        kw.setdefault("disable_encryption", True)
        kw.setdefault("bind_v4", "127.0.0.1")
        kw.setdefault("bind_v6", "")
        n = chirp.Node(**kw)
        nodes.append(n)
        return n

    yield make
    for n in reversed(nodes):
        _close_quietly(n)


@pytest.fixture
def make_consumer(tmp_path):
    """make_consumer(name="c", port=0, extra=()) -> started ConsumerProcess,
    logging to tmp_path/<name>.log; killed after the test."""
    procs = []

    def make(name="consumer", port=0, extra=()):
        p = faultkit.ConsumerProcess(str(tmp_path / f"{name}.log"), port=port, extra=extra)
        procs.append(p)
        return p.start()

    yield make
    for p in procs:
        p.stop()


@pytest.fixture
def make_proxy():
    """make_proxy(upstream_port, plans) -> FaultProxy; closed after the test."""
    proxies = []

    def make(upstream_port, plans=()):
        p = faultkit.FaultProxy(upstream_port, plans)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        _close_quietly(p)


@pytest.fixture
def raw_server():
    s = faultkit.RawServer()
    yield s
    s.close()
