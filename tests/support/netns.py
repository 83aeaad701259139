"""Programs run in a network namespace of their own, for the TLS tests.

chirp encrypts every connection whose peer is not exactly 127.0.0.1 / ::1,
and on one host a connection to any other local address still has the
source 127.0.0.1.  So a TLS test runs its program in a fresh network
namespace (``unshare -n``) whose loopback device also carries
NAMESPACE_ADDRESS (198.18.0.1/32): nodes bind 0.0.0.0 and talk to
(NAMESPACE_ADDRESS, port), and both sides see a non-loopback address.

The program's children inherit the namespace.  This module does not
import chirp.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

from .child import Completed, child_env, run
from .net import NAMESPACE_ADDRESS

ADDRESS = NAMESPACE_ADDRESS
_SETUP = f"ip link set lo up && ip addr add {ADDRESS}/32 dev lo"
_probe_cache: tuple[bool, str] | None = None


def probe() -> tuple[bool, str]:
    """(True, "") if a namespace can be made here, else (False, why)."""
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
            p = run(
                ["unshare", "-n", "sh", "-c", f"{_SETUP} && ip -4 addr show dev lo"],
                timeout=10,
                timeout_is_error=False,
            )
        except OSError as e:
            why = f"unshare -n failed: {e}"
        else:
            if p.timed_out:
                why = "unshare -n did not finish within 10 s"
            elif p.returncode != 0:
                why = f"unshare -n failed (needs root or CAP_SYS_ADMIN): {p.stderr.strip()}"
            elif ADDRESS not in p.stdout:
                why = f"could not put {ADDRESS} on lo in the namespace: {p.stdout!r}"
    _probe_cache = (not why, why)
    return _probe_cache


def require() -> str:
    """ADDRESS if namespaces work here; else the test is skipped, or FAILS
    when the environment variable CI is set (CI runs as root, so a missing
    namespace there is a broken setup, not a reason to skip)."""
    import pytest

    ok, why = probe()
    if not ok:
        msg = f"cannot create a network namespace: {why}"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: these tests must run)", pytrace=False)
        pytest.skip(msg)
    return ADDRESS


def run_in_namespace(argv, timeout: float, env: dict | None = None, preload: bool = True):
    """Run argv to its end in a new network namespace (support.child.run:
    bounded, its process group killed at the end).  The environment is this
    one's updated by env; preload=False drops LD_PRELOAD.  A timeout is
    reported by the result (timed_out), not raised."""
    cmd = " ".join(shlex.quote(str(a)) for a in argv)
    return run(
        ["unshare", "-n", "sh", "-c", f"{_SETUP} && exec {cmd}"],
        timeout,
        env=child_env(env, preload=preload),
        timeout_is_error=False,
    )


__all__ = ["ADDRESS", "Completed", "probe", "require", "run_in_namespace"]
