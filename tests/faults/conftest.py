"""Fixtures of the fault-injection tests (tests/faults).

Environment:
  CHIRP_SOAK_SECONDS   run the kill test that long (default: a short CI run)
  CHIRP_FAULT_SEED     replay the random choices of a failed run
"""

import pytest
from support.net import LOCAL
from support.raw import RawServer

from .kit import ConsumerProcess, FaultProxy


@pytest.fixture
def node_options():
    """node_factory's nodes here listen on 127.0.0.1 only."""
    return {"bind_v4": LOCAL, "bind_v6": ""}


@pytest.fixture
def make_consumer(tmp_path):
    """make_consumer(name="c", port=0, extra=()) -> started ConsumerProcess,
    logging to tmp_path/<name>.log; killed after the test."""
    procs = []

    def make(name="consumer", port=0, extra=()):
        p = ConsumerProcess(str(tmp_path / f"{name}.log"), port=port, extra=extra)
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
        p = FaultProxy(upstream_port, plans)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        try:
            p.close()
        except Exception:
            pass


@pytest.fixture
def raw_server():
    s = RawServer()
    yield s
    s.close()
