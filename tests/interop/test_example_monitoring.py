"""examples/monitoring.py: agents -> collector (a chirp.Router) -> monitor,
run as a user runs it, with libchirp 1.2.1 agents (processes of the
libchirp virtualenv's python) and without them.

Run:  python -m pytest -q tests/interop/test_example_monitoring.py
"""

from __future__ import annotations

import os
import re
import sys

from support.child import ROOT, Completed, child_env, run

EXAMPLE = os.path.join(ROOT, "examples", "monitoring.py")
MALFORMED = "malformed reading b'seq=? cpu=???'"  # the monitor's reason
CUT = "rejected a message, and the peer cannot read why"  # chirp's warning


def run_monitoring(*args: str) -> Completed:
    """Run the example to its end; it must exit 0."""
    proc = run([sys.executable, EXAMPLE, *args], timeout=120, env=child_env())
    assert proc.returncode == 0, proc.describe()
    return proc


def cpu_avg(n: int) -> str:
    """The average the monitor prints for an agent's n readings: the data
    went through the collector unchanged."""
    return "%.2f" % (sum((i * 37 % 100) / 100 for i in range(n)) / n)


def check_monitor(proc: Completed, n: int, names: list[str]) -> None:
    """The monitor saw each agent's n readings, and only those agents;
    the collector forwarded each once and rejected the malformed ones."""
    lines = proc.stdout.splitlines()
    seen = dict(re.findall(r"^monitor: agent (\S+) sent (\d+) readings", proc.stdout, re.M))
    assert seen == dict.fromkeys(names, str(n)), proc.describe()
    for name in names:
        assert f"monitor: agent {name} sent {n} readings (cpu avg {cpu_avg(n)})" in lines
    assert f"collector: forwarded {n * len(names)}, rejected {len(names)}" in lines, proc.stdout
    assert lines[-1] == "every reading arrived exactly once", proc.describe()


def check_chirp_agents(proc: Completed, n: int, names: list[str]) -> None:
    """Every reading acknowledged; the malformed one rejected by the
    monitor, with its reason, through the collector."""
    lines = proc.stdout.splitlines()
    for name in names:
        assert f"{name}: {n} of {n} readings acknowledged" in lines, proc.describe()
        assert f"{name}: the malformed reading was rejected: {MALFORMED}" in lines, proc.stdout


def test_monitoring_with_libchirp_agents(libchirp_python):
    n = 25
    chirps, libchirps = ["chirp-1", "chirp-2"], ["libchirp-1", "libchirp-2", "libchirp-3"]
    proc = run_monitoring(
        "--libchirp-python", libchirp_python, "--agents", "2", "--libchirp-agents", "3",
        "--readings", str(n),
    )  # fmt: skip
    assert "chirp agents only" not in proc.stdout
    check_chirp_agents(proc, n, chirps)
    lines = proc.stdout.splitlines()
    for name in libchirps:  # what the libchirp agent itself printed
        assert f"{name}: {n} of {n} readings acknowledged" in lines, proc.describe()
        assert f"{name}: a reading failed" not in proc.stdout, proc.stdout
        # No reject frame in libchirp: no ACK and a closed connection, which
        # libchirp 1.2.1 reports as its own error (docs/protocol.md).
        failed = [x for x in lines if x.startswith(f"{name}: the malformed reading failed: ")]
        assert len(failed) == 1 and "CH_PROTOCOL_ERROR" in failed[0], proc.stdout
    check_monitor(proc, n, chirps + libchirps)
    # The collector closed one connection per libchirp agent, and said why.
    assert proc.stderr.count(CUT) == len(libchirps), proc.stderr


def test_monitoring_without_libchirp():
    proc = run_monitoring()  # the defaults: 3 chirp agents, 20 readings each
    names = ["chirp-1", "chirp-2", "chirp-3"]
    assert proc.stdout.splitlines()[0] == "no --libchirp-python: chirp agents only"
    assert not re.search(r"libchirp-\d", proc.stdout), proc.stdout  # no libchirp agent
    check_chirp_agents(proc, 20, names)
    check_monitor(proc, 20, names)
    # chirp agents read the reject frame: no connection was cut
    assert CUT not in proc.stderr, proc.stderr
