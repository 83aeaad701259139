"""Fixtures for the hostile-peer tests (tests/hostile).

What these tests prove: a hostile peer costs one connection, never the
node, and a node's memory stays bounded whatever peers do.

Rules: every node uses port 0; every wait is bounded; every socket, node and
child process is closed in a finalizer; a watchdog dumps all stacks and ends
the run if a test hangs anyway.
"""

import faulthandler
import os

import pytest

from .kit import LOCAL, NodeHost, close_all, raise_nofile

HANG_LIMIT = float(os.environ.get("CHIRP_HOSTILE_HANG_LIMIT", "90"))


@pytest.fixture(autouse=True)
def _hang_guard():
    """Overrides any suite-wide guard of the same name for this directory."""
    faulthandler.dump_traceback_later(HANG_LIMIT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session", autouse=True)
def _enough_fds():
    raise_nofile(4096)


@pytest.fixture
def make_node():
    """make(**kw) -> an in-process chirp.Node (plaintext, port 0); all closed after."""
    import chirp

    nodes = []

    def make(**kw):
        kw.setdefault("port", 0)
        kw.setdefault("disable_encryption", True)
        kw.setdefault("bind_v6", "")
        kw.setdefault("timeout", 5.0)
        n = chirp.Node(**kw)
        nodes.append(n)
        return n

    yield make
    for n in reversed(nodes):
        try:
            n.close()
        except Exception:
            pass


@pytest.fixture
def good_peer(make_node):
    """A well-behaved synchronous node used to prove the target still serves."""
    return make_node(synchronous=True, timeout=5.0)


@pytest.fixture
def make_host():
    """make(**node_options) -> NodeHost: a node in a child process."""
    hosts = []

    def make(**kw):
        h = NodeHost(**kw)
        hosts.append(h)
        return h

    yield make
    for h in reversed(hosts):
        h.close()


@pytest.fixture
def sockets():
    """A list to put raw sockets in; all are closed after the test."""
    socks = []
    yield socks
    close_all(socks)


__all__ = ["LOCAL"]
