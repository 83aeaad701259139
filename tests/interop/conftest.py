"""Fixtures for the interop tests: chirp against libchirp 1.2.1 as a peer.

libchirp runs in its own process, from its own virtualenv (made by
setup_libchirp.sh), driven by libchirp_peer.py. Nothing of libchirp is
imported here. Every wait has a timeout and every peer process is stopped
(SIGTERM, then SIGKILL) in a finalizer.

Environment:
  CHIRP_LIBCHIRP_VENV  the libchirp virtualenv (default <repo>/.venv-libchirp)
"""

import faulthandler
import hashlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SETUP_SCRIPT = os.path.join(HERE, "setup_libchirp.sh")
PEER_SCRIPT = os.path.join(HERE, "libchirp_peer.py")
VENV = os.environ.get("CHIRP_LIBCHIRP_VENV") or os.path.join(ROOT, ".venv-libchirp")
LOCAL = "127.0.0.1"
SETUP_TIMEOUT = 900.0
INTEROP_HANG_LIMIT = float(os.environ.get("CHIRP_INTEROP_HANG_LIMIT", "150"))


def payload(i, size, kind=b"D"):
    """Deterministic bytes for message i; same function as libchirp_peer.py."""
    if size <= 0:
        return b""
    block = hashlib.sha256(kind + b":%d" % i).digest()
    reps = size // len(block) + 1
    return (block * reps)[:size]


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


# -- libchirp virtualenv ------------------------------------------------------

# libchirp runs uninstrumented: a sanitizer run's preload stays with chirp.
PEER_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def _venv_python():
    return os.path.join(VENV, "bin", "python")


def _imports_libchirp(python):
    if not os.path.exists(python):
        return False
    try:
        r = subprocess.run(
            [python, "-c", "import libchirp"], capture_output=True, timeout=60, env=PEER_ENV
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@pytest.fixture(scope="session")
def libchirp_python():
    """Path of a python that imports libchirp; runs setup_libchirp.sh if needed.

    A failing setup fails the tests (with the script's output): never a skip.
    """
    python = _venv_python()
    if _imports_libchirp(python):
        return python
    env = dict(PEER_ENV, CHIRP_LIBCHIRP_VENV=VENV)
    try:
        r = subprocess.run(
            ["bash", SETUP_SCRIPT],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=SETUP_TIMEOUT,
        )
        output, rc = r.stdout.decode(errors="replace"), r.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode(errors="replace")
        rc = f"timeout after {SETUP_TIMEOUT:.0f}s"
    if rc != 0 or not _imports_libchirp(python):
        pytest.fail(f"setup_libchirp.sh failed (rc={rc}):\n{output[-20000:]}", pytrace=False)
    return python


# -- ports ---------------------------------------------------------------------


def free_port():
    """A TCP port free on 0.0.0.0 and :: right now (libchirp binds both)."""
    for _ in range(50):
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s4.bind(("0.0.0.0", 0))
            port = s4.getsockname()[1]
            try:
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            except OSError:
                return port
            try:
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s6.bind(("::", port))
                return port
            except OSError:
                continue
            finally:
                s6.close()
        finally:
            s4.close()
    raise RuntimeError("no free port found")


# -- the peer process ------------------------------------------------------------


class PeerError(AssertionError):
    pass


class LibchirpPeer:
    """A running libchirp_peer.py process.

    stdout is read by a thread: ``READY <port> <identity>`` then JSON lines,
    available through :meth:`event`. stderr goes to a temporary file that is
    shown in every failure message.
    """

    def __init__(self, python, mode, port=None, synchronous=True, extra=(), ready_timeout=20.0):
        self.mode = mode
        self.port = port or free_port()
        self.synchronous = synchronous
        self.identity = None
        self.args = [
            python,
            "-u",
            PEER_SCRIPT,
            "--mode",
            mode,
            "--port",
            str(self.port),
            "--synchronous",
            "1" if synchronous else "0",
            "--disable-encryption",
        ] + [str(a) for a in extra]
        self._stderr = tempfile.TemporaryFile()
        self._events = queue.Queue()
        self.lines = []
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
            env=PEER_ENV,
        )
        self._reader = threading.Thread(
            target=self._read, daemon=True, name="libchirp-peer-%d" % self.proc.pid
        )
        self._reader.start()
        self._wait_ready(ready_timeout)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line.startswith("READY "):
                self._events.put(("ready", line))
                continue
            try:
                self._events.put(("json", json.loads(line)))
            except ValueError:
                self._events.put(("text", line))
        self._events.put(("eof", None))

    def stderr(self):
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")[-8000:]
        except (OSError, ValueError):
            return ""

    def describe(self):
        return "libchirp peer %s (pid %d, rc %s)\n  argv: %s\n  stdout tail: %s\n  stderr:\n%s" % (
            self.mode,
            self.proc.pid,
            self.proc.poll(),
            " ".join(self.args[2:]),
            self.lines[-5:],
            self.stderr(),
        )

    def fail(self, what):
        raise PeerError(f"{what}\n{self.describe()}")

    def _wait_ready(self, timeout):
        kind, value = self._next(timeout, "READY")
        if kind != "ready":
            self.fail(f"peer did not become ready (got {kind} {value!r})")
        parts = value.split()
        assert int(parts[1]) == self.port
        self.identity = bytes.fromhex(parts[2])

    def _next(self, timeout, what):
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            self.fail(f"timeout ({timeout:.1f}s) waiting for {what}")

    def event(self, timeout=20.0, kind=None):
        """Next JSON object from the peer (with event == kind, if given)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f"timeout ({timeout:.1f}s) waiting for event {kind}")
            k, value = self._next(left, kind or "an event")
            if k == "eof":
                self._events.put((k, value))  # stay at EOF for later calls
                self.fail(f"peer closed stdout while waiting for event {kind}")
            if k != "json":
                continue
            if value.get("event") == "error":
                self.fail("peer reported an error: {}".format(value.get("error")))
            if kind is None or value.get("event") == kind:
                return value

    def events(self, n, kind, timeout=30.0):
        deadline = time.monotonic() + timeout
        return [self.event(max(0.01, deadline - time.monotonic()), kind) for _ in range(n)]

    def wait(self, timeout=30.0):
        """Wait for the process to exit by itself; returns its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"peer did not exit within {timeout:.1f}s")

    def stop(self, timeout=15.0):
        """SIGTERM, then SIGKILL after timeout. Idempotent."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            except OSError:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        return self.proc.returncode

    def close(self):
        self.stop()
        self._stderr.close()


@pytest.fixture
def libchirp_peer(libchirp_python):
    """``spawn(mode, synchronous=True, *extra_args)`` -> a ready LibchirpPeer.

    All peers are stopped after the test.
    """
    peers = []

    def spawn(mode, *extra, synchronous=True, port=None):
        p = LibchirpPeer(libchirp_python, mode, port=port, synchronous=synchronous, extra=extra)
        peers.append(p)
        return p

    yield spawn
    for p in reversed(peers):
        try:
            p.close()
        except Exception as e:  # noqa: BLE001 - never mask the test's result
            sys.stderr.write(f"stopping libchirp peer failed: {e!r}\n")


# -- chirp nodes -----------------------------------------------------------------


@pytest.fixture
def chirp_node():
    """``make(**kw)`` -> a chirp.Node (port 0, plaintext, 5 s timeout); closed
    after the test."""
    import chirp

    nodes = []

    def make(**kw):
        kw.setdefault("port", 0)
        kw.setdefault("disable_encryption", True)
        kw.setdefault("timeout", 5.0)
        n = chirp.Node(**kw)
        nodes.append(n)
        return n

    yield make
    for n in reversed(nodes):
        try:
            close = getattr(n, "close", None)
            if close is not None:
                close()
            else:
                n.__exit__(None, None, None)
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture(autouse=True)
def _interop_hang_guard():
    """Dump every stack and end the run if a test hangs despite the timeouts."""
    faulthandler.dump_traceback_later(INTEROP_HANG_LIMIT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
