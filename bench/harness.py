"""The benchmark harness's process driver and environment.

Child runs one worker process (bench/worker.py) and reads its protocol
lines; Env says where things are: the source tree, the libchirp python,
pyzmq; run_stream runs one receiver and one sender.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable

from worker_util import now

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(BENCH_DIR, "worker.py")


def chirp_cmd(spec: dict) -> list[str]:
    """The command of a worker that runs with this python (chirp, pyzmq)."""
    return [sys.executable, WORKER, json.dumps(spec)]


# Children die with the harness even if it is killed: util-linux's setpriv
# sets the parent-death signal and execs the worker.  (A preexec_fn would
# run Python between fork and exec in a process with threads, which can
# deadlock on a lock another thread held at the fork.)
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _with_pdeathsig(argv: list[str]) -> list[str]:
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv] if _SETPRIV else argv


class Child:
    """A worker process: stdout lines go to a queue via a reader thread,
    stderr to a temp file (its tail is reported on errors)."""

    live: list[Child] = []

    def __init__(self, argv: list[str], env: dict | None = None, stdin: bool = False) -> None:
        self.argv = argv
        self.err = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(
            _with_pdeathsig(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.err,
            env=env,
        )
        self.lines: queue.Queue = queue.Queue()
        t = threading.Thread(target=self._read, daemon=True)
        t.start()
        Child.live.append(self)

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        """The first stdout line starting with prefix (the rest of it)."""
        end = now() + timeout
        while True:
            left = end - now()
            if left <= 0:
                raise BenchError(f"no {prefix!r} line within {timeout:.0f} s" + self.tail())
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                raise BenchError(
                    f"worker exited ({self.proc.returncode}) before {prefix!r}" + self.tail()
                )
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def result(self, timeout: float) -> dict:
        """The worker's RESULT; its error, if it reports one, as BenchError."""
        r = json.loads(self.expect("RESULT", timeout))
        if "error" in r:
            raise BenchError(r["error"] + self.tail())
        return r

    def tail(self, n: int = 1500) -> str:
        """The last N characters of the worker's stderr, for error notes."""
        try:
            self.err.flush()
            self.err.seek(0)
            text = self.err.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""
        text = text.strip()
        return f"\n  [stderr of {os.path.basename(self.argv[0])}: ...{text[-n:]}]" if text else ""

    def close_stdin(self) -> None:
        """Close the worker's stdin: the idle workers end when it closes."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def kill(self) -> None:
        """End the worker, whatever state it is in, and forget it."""
        self.close_stdin()
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.err.close()
        if self in Child.live:
            Child.live.remove(self)


def kill_all() -> None:
    """End every worker still running (on the harness's way out)."""
    for c in list(Child.live):
        c.kill()


class BenchError(RuntimeError):
    """A measurement failed: its row says ERROR with this message."""


class Env:
    """Where things are: the source tree, the libchirp python, zmq."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quick = args.quick
        self.scale = args.scale
        self.src = _find_src(args.src)
        self.lc_python = args.libchirp_python or os.environ.get("CHIRP_LIBCHIRP_PYTHON")
        if not self.lc_python and self.src:
            cand = os.path.join(self.src, ".venv-libchirp", "bin", "python")
            if os.path.exists(cand):
                self.lc_python = cand
        self.lc_why = ""
        if not self.lc_python or not os.path.exists(self.lc_python):
            self.lc_why = "libchirp venv not found (bash tests/interop/setup_libchirp.sh)"
            self.lc_python = None
        else:
            r = subprocess.run(
                [self.lc_python, "-c", "import libchirp.queue"],
                capture_output=True,
                timeout=60,
                env=self.lc_env(),
            )
            if r.returncode != 0:
                self.lc_why = "libchirp does not import in " + self.lc_python
                self.lc_python = None
        try:
            import zmq  # noqa: F401

            self.zmq_why = ""
        except ImportError:
            self.zmq_why = "pyzmq not installed (pip install pyzmq)"
        self.deadline = 60.0 if self.quick else 300.0
        self.soak_seconds = args.soak_seconds
        self.tmp = tempfile.mkdtemp(prefix="chirp-bench-")
        self.built: dict | None = None

    def n(self, full: int, quick: int) -> int:
        """A message count: FULL, or QUICK with --quick, times --scale."""
        return max(1, int((quick if self.quick else full) * self.scale))

    def lc_env(self) -> dict:
        """The environment of libchirp processes (without LD_PRELOAD)."""
        return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}

    def chirp_cmd(self, spec: dict) -> list[str]:
        """The command of a chirp or pyzmq worker."""
        return chirp_cmd(spec)

    def lc_cmd(self, spec: dict) -> list[str]:
        """The command of a libchirp worker: the libchirp virtualenv's python,
        with no PYTHON* variable and no user site of ours (-E -s; not -I,
        which would drop the worker's own directory from its path)."""
        return [str(self.lc_python), "-E", "-s", WORKER, json.dumps(spec)]


def _find_src(given: str | None) -> str | None:
    """The chirp source tree (csrc/include/chirp.h, examples/ping.c, bench/c_stream.c)."""
    cands = [given, os.environ.get("CHIRP_SRC")]
    here = os.path.abspath(os.getcwd())
    while True:
        cands.append(here)
        up = os.path.dirname(here)
        if up == here:
            break
        here = up
    cands.append(os.path.dirname(BENCH_DIR))  # the tree this harness is in
    for c in cands:
        if c and os.path.exists(os.path.join(c, "csrc", "include", "chirp.h")):
            return os.path.abspath(c)
    return None


def free_port() -> int:
    """A port that is free now (for libchirp, whose PORT cannot be 0)."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
        s.close()
        if port > 1024:
            return port
    raise BenchError("no free port")


def rss_kib(pid: int) -> int:
    """The resident memory of process PID in KiB, or -1."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def fd_count(pid: int) -> int:
    """How many files process PID has open, or -1."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def run_stream(
    env: Env,
    recv_cmd: list[str],
    send_spec: dict,
    send_argv: Callable[[dict], list[str]],
    timeout: float,
    recv_env: dict | None = None,
    send_env: dict | None = None,
    beside: Callable[[int], Child] | None = None,
) -> tuple[dict, dict]:
    """Start the receiver, then the sender at its port; both results.
    beside(port), if given, starts a process that runs meanwhile (killed
    at the end), once the receiver is up and before the sender starts."""
    r = s = b = None
    try:
        r = Child(recv_cmd, env=recv_env)
        port = int(r.expect("READY", 60).split()[0])
        if beside is not None:
            b = beside(port)
        s = Child(send_argv(dict(send_spec, port=port)), env=send_env)
        sres = s.result(timeout)
        rres = r.result(timeout)
        return sres, rres
    finally:
        for c in (s, b, r):
            if c is not None:
                c.kill()


def result_kv(line: str) -> dict:
    """The key=value words of a C program's RESULT line, numbers as floats."""
    d: dict = {}
    for part in line.split():
        if "=" in part:
            k, v = part.split("=", 1)
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
    return d


def find_cc() -> str:
    """The C compiler: $CC, else cc or gcc; BenchError if none."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise BenchError("no C compiler (cc)")
    return cc


def build_program(src: str, exe: str, libs: tuple[str, ...] = ()) -> str:
    """A one-file C program (no chirp core), built once into exe."""
    if not os.path.exists(exe):
        cmd = [find_cc(), "-std=c99", "-O2", src, *libs, "-o", exe]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            name = os.path.basename(src)
            raise BenchError(f"building {name} failed: " + r.stderr[-1500:])
    return exe
