"""TLS interop with libchirp 1.2.1: both directions, synchronous and
asynchronous, in a network namespace so that neither side sees loopback."""

from __future__ import annotations

import json

import pytest
from support import netns
from support.child import python

from chirp.pki import make_pki


@pytest.fixture(scope="module")
def namespace() -> str:
    return netns.require()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_pki(tmp_path_factory.mktemp("pki"), ["chirp", "libchirp"])


@pytest.mark.parametrize("sync", ["1", "0"], ids=["sync", "async"])
def test_tls_both_directions_with_libchirp(namespace, pki, libchirp_python, sync) -> None:
    argv = python(
        "interop.tls_scenario",
        libchirp_python,
        pki["chirp"],
        pki["libchirp"],
        pki["dh"],
        sync,
    )
    proc = netns.run_in_namespace(argv, timeout=120)
    assert proc.returncode == 0 and not proc.timed_out, proc.stdout + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["echo_ready"]
    assert result["echo_answers"] == [True, True, True, True]
    assert result["received"] == [[True, "198.18.0.1"]] * 20  # in order, intact
    assert result["sender_ok"] == [20]
