"""Fixtures for every test below tests/.

Rules kept by every test here:
- nodes come from ``node_factory`` and use port 0 (the OS picks), so tests
  can run in parallel;
- every blocking call has a timeout; every node, socket and child process
  is closed in a finalizer (children through support.child, which also
  makes them die with this process);
- the hang guard below dumps every thread's stack and ends the run if a
  test hangs anyway, so the suite never hangs (pytest-timeout is not used).

Helpers live in the package tests/support (importable as ``support``).
"""

import faulthandler
import os
import signal

import pytest
from support.nodes import NodeFactory
from support.raw import Blackhole, SilentPeer

# The hang guard's limit for a test without a hang_limit marker; the
# environment variable overrides it (for a slow machine, or a debugger).
HANG_LIMIT = float(os.environ.get("CHIRP_TEST_HANG_LIMIT", "150"))
_guard_file = None


def pytest_configure(config):
    """The hang guard writes to the real stderr: by the time it fires,
    pytest's capture has fd 2, and what it holds dies with the process.

    A suite started as a background job of a script (``bash .ci/run &``)
    inherits SIGINT ignored, and so would every child it starts: Python
    then raises no KeyboardInterrupt, and the Ctrl-C tests fail for a
    reason that is not chirp's.  Handling SIGINT here again gives the
    children the default, as a program started from a terminal has."""
    global _guard_file
    _guard_file = os.fdopen(os.dup(2), "w")
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config):
    if _guard_file is not None:
        _guard_file.close()


@pytest.fixture(autouse=True)
def _hang_guard(request):
    """Ends the run, with every thread's stack, if a test (with its
    function-scoped fixtures) takes longer than its limit:
    ``@pytest.mark.hang_limit(seconds)`` on the test or its module, else
    HANG_LIMIT."""
    marker = request.node.get_closest_marker("hang_limit")
    limit = float(marker.args[0]) if marker else HANG_LIMIT
    faulthandler.dump_traceback_later(limit, exit=True, file=_guard_file or 2)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def node_options():
    """Options every node_factory node gets unless the test says otherwise;
    a directory's conftest may override this fixture."""
    return {}


@pytest.fixture
def node_factory(node_options):
    """``make(**options)`` -> a new chirp.Node: port 0, plaintext, 5 s timeout
    (support.nodes.DEFAULTS), then node_options, then options.  Every node
    it made is closed after the test."""
    factory = NodeFactory(**node_options)
    yield factory
    factory.close()


@pytest.fixture
def pair(node_factory):
    """Two asynchronous nodes (a, b)."""
    return node_factory(synchronous=False), node_factory(synchronous=False)


@pytest.fixture
def blackhole():
    b = Blackhole()
    yield b
    b.close()


@pytest.fixture
def silent_peer():
    s = SilentPeer()
    yield s
    s.close()
