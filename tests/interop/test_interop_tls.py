"""TLS interop with libchirp 1.2.1: both directions, synchronous and
asynchronous, in a network namespace so that neither side sees loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from chirp.pki import make_pki

HERE = os.path.dirname(os.path.abspath(__file__))


def _netns_available() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip missing (util-linux, iproute2)"
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def netns() -> None:
    why = _netns_available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"TLS interop needs a network namespace in CI: {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_pki(tmp_path_factory.mktemp("pki"), ["chirp", "libchirp"])


@pytest.mark.parametrize("sync", ["1", "0"], ids=["sync", "async"])
def test_tls_both_directions_with_libchirp(netns, pki, libchirp_python, sync) -> None:
    script = " ".join(
        [
            "ip link set lo up && ip addr add 198.18.0.1/32 dev lo && exec",
            sys.executable,
            os.path.join(HERE, "tls_scenario.py"),
            libchirp_python,
            os.path.join(HERE, "libchirp_peer.py"),
            str(pki["chirp"]),
            str(pki["libchirp"]),
            str(pki["dh"]),
            sync,
        ]
    )
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["echo_ready"]
    assert result["echo_answers"] == [True, True, True, True]
    assert result["received"] == [[True, "198.18.0.1"]] * 20  # in order, intact
    assert result["sender_ok"] == [20]
