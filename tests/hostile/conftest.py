"""Fixtures of the hostile-peer tests (tests/hostile)."""

import pytest
from support.raw import close_all

from .kit import NodeHost, raise_nofile


@pytest.fixture(scope="session", autouse=True)
def _enough_fds():
    raise_nofile(4096)


@pytest.fixture
def node_options():
    """node_factory's nodes here listen on IPv4 only."""
    return {"bind_v6": ""}


@pytest.fixture
def good_peer(node_factory):
    """A well-behaved synchronous node used to prove the target still serves."""
    return node_factory(synchronous=True, timeout=5.0)


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
