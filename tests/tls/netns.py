"""Run a Python script in a fresh network namespace, for the TLS tests.

chirp encrypts every connection whose peer is not exactly 127.0.0.1 / ::1,
and on one host a connection to any other local address still has the
source 127.0.0.1.  So a TLS scenario runs in its own network namespace
(``unshare -n``) where the loopback device also carries ``ADDRESS``
(198.18.0.1/32): nodes bind 0.0.0.0 and talk to ``(ADDRESS, port)``, and
both sides see a non-loopback address.

The script inherits the namespace, and so do the processes it starts.  It
reports by printing JSON lines on stdout; ``run`` collects them.

This module does not import chirp.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field

ADDRESS = "198.18.0.1"

_SETUP = f"ip link set lo up && ip addr add {ADDRESS}/32 dev lo"
_probe_cache = None


def probe():
    """``(True, "")`` if a namespace can be made here, else ``(False, why)``."""
    global _probe_cache
    if _probe_cache is not None:
        return _probe_cache
    why = ""
    if not sys.platform.startswith("linux"):
        why = "network namespaces need Linux"
    elif shutil.which("unshare") is None:
        why = "the unshare command (util-linux) is missing"
    elif shutil.which("ip") is None:
        why = "the ip command (iproute2) is missing"
    else:
        try:
            p = subprocess.run(
                ["unshare", "-n", "sh", "-c", f"{_SETUP} && ip -4 addr show dev lo"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f"unshare -n failed: {e}"
        else:
            if p.returncode != 0:
                why = f"unshare -n failed (needs root or CAP_SYS_ADMIN): {p.stderr.strip()}"
            elif ADDRESS not in p.stdout:
                why = f"could not put {ADDRESS} on lo in the namespace: {p.stdout!r}"
    _probe_cache = (not why, why)
    return _probe_cache


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    records: list = field(default_factory=list)

    def last(self, kind=None):
        """The last JSON record (of the given ``kind``), or None."""
        for r in reversed(self.records):
            if kind is None or r.get("kind") == kind:
                return r
        return None

    def describe(self):
        return (
            f"exit code {self.returncode}{' (timed out, killed)' if self.timed_out else ''}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-6000:]}"
        )


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except OSError:
        pass


def run(script, args=(), timeout=30.0, env=None, python=None):
    """Run ``python script args...`` in a new network namespace.

    Waits at most ``timeout`` seconds; the whole process group (the script
    and everything it started) is killed when it ends or times out.
    Returns a ``Result`` whose ``records`` are the JSON lines of stdout.
    """
    full_env = {"PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", **(env or {})}
    return run_program([python or sys.executable, script, *args], timeout, full_env)


def run_program(argv, timeout=30.0, env=None, base_env=None):
    """Run the program ``argv`` in a new network namespace, as ``run`` does;
    its environment is ``base_env`` (default: this one's) updated by ``env``."""
    cmd = " ".join(shlex.quote(str(a)) for a in argv)
    full_env = dict(os.environ if base_env is None else base_env)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", f"{_SETUP} && exec {cmd}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        start_new_session=True,  # its own process group: killed as a whole
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        out, err = proc.communicate(timeout=10)
    finally:
        # Anything the script left behind in its group goes too.
        _kill_group(proc)
    records = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    return Result(proc.returncode, out, err, timed_out, records)
