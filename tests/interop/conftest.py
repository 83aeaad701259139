"""Fixtures for the interop tests: chirp against libchirp 1.2.1 as a peer.

libchirp runs in its own process, from its own virtualenv (made by
setup_libchirp.sh), driven by libchirp_peer.py; nothing of libchirp is
imported here.  chirp's nodes come from node_factory.

Environment:
  CHIRP_LIBCHIRP_VENV  the libchirp virtualenv (default <repo>/.venv-libchirp)
"""

import os
import sys
import time

import pytest
from support.child import ROOT, Child, ChildError, child_env, python, run
from support.net import free_port_v4_and_v6

HERE = os.path.dirname(os.path.abspath(__file__))
SETUP_SCRIPT = os.path.join(HERE, "setup_libchirp.sh")
VENV = os.environ.get("CHIRP_LIBCHIRP_VENV") or os.path.join(ROOT, ".venv-libchirp")
SETUP_TIMEOUT = 900.0

# libchirp runs uninstrumented: a sanitizer run's preload stays with chirp.
PEER_ENV = child_env(preload=False)


# -- libchirp virtualenv ------------------------------------------------------


def _venv_python():
    return os.path.join(VENV, "bin", "python")


def _imports_libchirp(python_exe):
    if not os.path.exists(python_exe):
        return False
    try:
        r = run([python_exe, "-c", "import libchirp"], timeout=60, env=PEER_ENV)
    except (OSError, ChildError):  # ChildError: no answer within 60 s
        return False
    return r.returncode == 0


@pytest.fixture(scope="session")
def libchirp_python():
    """Path of a python that imports libchirp; runs setup_libchirp.sh if needed.

    A failing setup fails the tests (with the script's output): never a skip.
    """
    python_exe = _venv_python()
    if _imports_libchirp(python_exe):
        return python_exe
    r = run(
        ["bash", SETUP_SCRIPT],
        timeout=SETUP_TIMEOUT,
        env=child_env({"CHIRP_LIBCHIRP_VENV": VENV}, preload=False),
        timeout_is_error=False,
    )
    rc = f"timeout after {SETUP_TIMEOUT:.0f}s" if r.timed_out else r.returncode
    if rc != 0 or not _imports_libchirp(python_exe):
        output = r.stdout + r.stderr
        pytest.fail(f"setup_libchirp.sh failed (rc={rc}):\n{output[-20000:]}", pytrace=False)
    return python_exe


# -- the peer process ------------------------------------------------------------


class LibchirpPeer(Child):
    """A running libchirp_peer.py (python -m interop.libchirp_peer).

    stdout: ``READY <port> <identity>``, then JSON lines, read with event().
    """

    def __init__(self, python_exe, mode, port=None, synchronous=True, extra=(), ready_timeout=20):
        self.mode = mode
        self.port = port or free_port_v4_and_v6()
        self.synchronous = synchronous
        args = ["--mode", mode, "--port", self.port, "--synchronous", int(synchronous)]
        args += ["--disable-encryption", *extra]
        super().__init__(
            python("interop.libchirp_peer", *args, interpreter=python_exe),
            name=f"libchirp peer {mode}",
            env=PEER_ENV,
        )
        try:
            port, identity = self.expect_line("READY", ready_timeout)
            assert int(port) == self.port
            self.identity = bytes.fromhex(identity)
        except BaseException:
            self.close()
            raise

    def event(self, timeout=20.0, kind=None):
        """Next JSON object from the peer (with event == kind, if given); an
        "error" event fails the test."""

        def wanted(obj):
            if obj.get("event") == "error":
                self.fail("peer reported an error: {}".format(obj.get("error")))
            return kind is None or obj.get("event") == kind

        return self.read_json(timeout, wanted, f"event {kind}")

    def events(self, n, kind, timeout=30.0):
        """n events of this kind, within timeout seconds in total."""
        deadline = time.monotonic() + timeout
        return [self.event(max(0.01, deadline - time.monotonic()), kind) for _ in range(n)]


@pytest.fixture
def libchirp_peer(libchirp_python):
    """``spawn(mode, *extra_args, synchronous=True, port=None)`` -> a ready
    LibchirpPeer.  All peers are stopped (SIGTERM, then SIGKILL) after the
    test."""
    peers = []

    def spawn(mode, *extra, synchronous=True, port=None):
        p = LibchirpPeer(libchirp_python, mode, port=port, synchronous=synchronous, extra=extra)
        peers.append(p)
        return p

    yield spawn
    for p in reversed(peers):
        try:
            p.close(grace=15)
        except Exception as e:  # noqa: BLE001 - never mask the test's result
            sys.stderr.write(f"stopping libchirp peer failed: {e!r}\n")
