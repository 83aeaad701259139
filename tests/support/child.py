"""The one way the tests start a child process: Child (a program the test
talks to line by line) and run() (a program run to its end).

A child never outlives the test process:

- it runs in a process group of its own (a new session), so it is killed
  together with whatever it started in that group;
- before it runs, the kernel is asked to SIGKILL it when the thread that
  started it ends (PR_SET_PDEATHSIG, set by `setpriv --pdeathsig`), so a
  test process killed with kill -9, or ended by the hang guard, takes its
  children along.  Start a child from the test's own thread, not from a
  helper thread that ends first;
- Child.close() kills the group (SIGTERM first, then SIGKILL), and a
  finalizer does the same should a test drop a Child without closing it;
  run() kills the group before it returns, however it returns.

Every read of a child's output is bounded by a timeout; a timeout or an
early exit raises ChildError, an AssertionError that says what the child
printed.  Python children import the tests' packages (support, hostile,
...): tests/ is put first on their PYTHONPATH.

This module does not import chirp.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)


class ChildError(AssertionError):
    pass


def child_env(env: dict | None = None, *, preload: bool = True, base: dict | None = None) -> dict:
    """The environment of a child: base (default: this process's) updated
    by env, with tests/ first on PYTHONPATH.  preload=False drops
    LD_PRELOAD: a sanitizer run preloads its runtimes into this process,
    and programs built without sanitizers must not get them."""
    full = dict(os.environ if base is None else base)
    if not preload:
        full.pop("LD_PRELOAD", None)
    if env:
        full.update(env)
    rest = full.get("PYTHONPATH")
    full["PYTHONPATH"] = TESTS + (os.pathsep + rest if rest else "")
    return full


def python(module: str, *args, interpreter: str | None = None) -> list[str]:
    """argv running a module of the tests (e.g. "hostile.node_host") with
    this Python, or with `interpreter` (unbuffered either way)."""
    return [interpreter or sys.executable, "-u", "-m", module, *[str(a) for a in args]]


# The kernel's parent-death signal is set by exec'ing the child through
# util-linux's setpriv, not by a preexec_fn: Python code run between fork()
# and exec() in a process with threads can deadlock on a lock another
# thread held at the fork (seen under ASan: the child hung in the
# allocator's lock while re-making threading's locks).
_SETPRIV = shutil.which("setpriv")


def _popen(argv, *, stdin, stderr, env, cwd) -> subprocess.Popen:
    argv = [str(a) for a in argv]
    if _SETPRIV is not None:
        argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    return subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own process group
    )


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's process group (the child and what it started
    there, even once the child itself is gone) and reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - unkillable
        pass


def _pump(stream, put, eof) -> None:
    """Copy a pipe's lines (decoded, without the newline) to put()."""
    try:
        for raw in stream:
            put(raw.decode(errors="replace").rstrip("\n"))
    except (OSError, ValueError):  # closed under us
        pass
    finally:
        if eof:
            put(None)


class Child:
    """A running program whose stdout the test reads line by line.

    stdin=True gives it a pipe for write_line()/close_stdin() (else
    /dev/null).  Its stderr is kept (the last lines, shown by describe())
    or, with stderr="inherit", goes where this process's stderr goes.
    """

    def __init__(
        self,
        argv,
        *,
        name: str | None = None,
        env: dict | None = None,
        stdin: bool = False,
        stderr: str = "keep",
        cwd: str | None = None,
    ):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.proc = _popen(
            self.argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stderr=None if stderr == "inherit" else subprocess.PIPE,
            env=child_env() if env is None else env,
            cwd=cwd,
        )
        self.pid = self.proc.pid
        # Nothing below refers to self, so a dropped Child is finalized.
        self._finalizer = weakref.finalize(self, _kill_group, self.proc)
        self._lines: queue.Queue = queue.Queue()
        self._out_tail: deque = deque(maxlen=50)
        self._err_tail: deque = deque(maxlen=400)
        out_tail, lines = self._out_tail, self._lines

        def put_out(line):
            if line is not None:
                out_tail.append(line)
            lines.put(line)

        self._threads = [
            threading.Thread(target=_pump, args=(self.proc.stdout, put_out, True), daemon=True)
        ]
        if self.proc.stderr is not None:
            self._threads.append(
                threading.Thread(
                    target=_pump, args=(self.proc.stderr, self._err_tail.append, False), daemon=True
                )
            )
        for t in self._threads:
            t.start()

    # -- state ---------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    @property
    def stderr(self) -> str:
        return "\n".join(self._err_tail)

    def describe(self) -> str:
        return (
            f"{self.name} (pid {self.pid}, exit code {self.proc.poll()})\n"
            f"  argv: {' '.join(self.argv)}\n"
            f"  last stdout lines: {list(self._out_tail)[-10:]}\n"
            f"  stderr:\n{self.stderr[-8000:]}"
        )

    def fail(self, what: str):
        raise ChildError(f"{what}\n{self.describe()}")

    # -- output --------------------------------------------------------------

    def readline(self, timeout: float, what: str = "a line") -> str:
        """The next stdout line, within timeout seconds."""
        try:
            line = self._lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            self.fail(f"{self.name} printed no {what} within {timeout:.1f} s")
        if line is None:
            self._lines.put(None)  # stay at EOF for later reads
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.fail(f"{self.name} closed its stdout before {what}")
        return line

    def read_to_end(self, timeout: float) -> list[str]:
        """The lines left until the child closes its stdout, within timeout
        seconds."""
        deadline = _deadline(timeout)
        out = []
        while True:
            try:
                line = self._lines.get(timeout=_left(deadline))
            except queue.Empty:
                self.fail(f"{self.name} did not close its stdout within {timeout:.1f} s")
            if line is None:
                self._lines.put(None)
                return out
            out.append(line)

    def expect_line(self, prefix: str, timeout: float) -> list[str]:
        """The next line must start with prefix: returns its other words."""
        line = self.readline(timeout, f"a {prefix!r} line")
        if not line.startswith(prefix):
            self.fail(f"{self.name} printed {line!r} instead of a {prefix!r} line")
        return line[len(prefix) :].split()

    def read_json(self, timeout: float, where=None, what: str = "a JSON line") -> dict:
        """The next JSON object on stdout for which where(obj) is true (any,
        without where), within timeout seconds in total; other lines are
        skipped."""
        deadline = _deadline(timeout)
        while True:
            line = self.readline(_left(deadline), what)
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and (where is None or where(obj)):
                return obj

    # -- input and signals ---------------------------------------------------

    def write_line(self, text: str) -> None:
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        try:
            self.proc.stdin.close()
        except (OSError, AttributeError):
            pass

    def send_signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the child to exit by itself; its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"{self.name} did not exit within {timeout:.1f} s")

    # -- ending --------------------------------------------------------------

    def kill(self) -> int:
        """SIGKILL the child's group now; returns once the child is gone."""
        self._finalizer()
        return self.proc.returncode

    def close(self, grace: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """sig (if still running), up to grace seconds to exit, then SIGKILL
        for the whole group; pipes closed.  Idempotent."""
        if self._finalizer.alive and self.proc.poll() is None and grace > 0:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=grace)
            except (subprocess.TimeoutExpired, OSError):
                pass
        self._finalizer()
        for t in self._threads:
            t.join(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        return self.proc.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _deadline(timeout: float) -> float:
    return time.monotonic() + timeout


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


@dataclass
class Completed:
    """A program run to its end by run()."""

    argv: list
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool

    def records(self) -> list[dict]:
        """The JSON objects it printed, one per stdout line."""
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def last(self, kind: str | None = None) -> dict | None:
        """The last JSON record (whose "kind" is kind, if given), or None."""
        for r in reversed(self.records()):
            if kind is None or r.get("kind") == kind:
                return r
        return None

    def describe(self) -> str:
        return (
            f"{' '.join(self.argv)}\n"
            f"exit code {self.returncode}{' (timed out, killed)' if self.timed_out else ''}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-6000:]}"
        )


def run(
    argv,
    timeout: float,
    *,
    env: dict | None = None,
    cwd: str | None = None,
    input: bytes | None = None,
    timeout_is_error: bool = True,
) -> Completed:
    """Run a program to its end, within timeout seconds, collecting its
    output (as text).  At the timeout its group is killed, and ChildError
    is raised (timeout_is_error) or the result says timed_out."""
    argv = [str(a) for a in argv]
    proc = _popen(
        argv,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env() if env is None else env,
        cwd=cwd,
    )
    timed_out = False
    try:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            out, err = proc.communicate(timeout=10)
    finally:
        _kill_group(proc)  # and whatever it left in its group
    res = Completed(
        argv, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), timed_out
    )
    if timed_out and timeout_is_error:
        raise ChildError(f"did not finish within {timeout:.1f} s:\n{res.describe()}")
    return res
