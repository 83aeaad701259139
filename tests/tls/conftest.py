"""Fixtures of the TLS tests.

- ``pki`` / ``other_pki``: two PKIs made once per session with
  ``chirp.pki.make_pki`` (different CAs).
- ``scenario``: ``scenario(name, **params)`` runs ``scenario.py NAME`` in a
  fresh network namespace (see netns.py) with both PKIs in its parameters,
  and returns its ``result`` record.  Without a namespace the test is
  skipped with the reason, or FAILS when the environment variable CI is set
  (CI runs as root, so a missing namespace there is a broken setup, not a
  reason to skip the TLS suite).
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import netns  # noqa: E402

SCENARIO = os.path.join(HERE, "scenario.py")
# Upper bound for one scenario process (each is far quicker when things work).
SCENARIO_TIMEOUT = float(os.environ.get("CHIRP_TLS_SCENARIO_TIMEOUT", "45"))


def _paths(p):
    return {k: str(v) for k, v in p.items()}


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    from chirp.pki import make_pki

    return _paths(make_pki(tmp_path_factory.mktemp("pki"), ["a", "b", "c"], days=30))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory):
    from chirp.pki import make_pki

    return _paths(
        make_pki(tmp_path_factory.mktemp("pki_other"), ["x"], days=30, ca_name="another CA")
    )


@pytest.fixture(scope="session")
def namespace():
    """Ensures network namespaces work here (fail under CI, else skip)."""
    ok, why = netns.probe()
    if not ok:
        msg = f"cannot create a network namespace for the TLS tests: {why}"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: the TLS tests must run)", pytrace=False)
        pytest.skip(msg)
    return netns.ADDRESS


@pytest.fixture
def scenario(namespace, pki, other_pki):
    def run(name, **params):
        full = dict(pki)
        full["other"] = other_pki
        full.update(params)
        import json

        res = netns.run(SCENARIO, [name, json.dumps(full)], timeout=SCENARIO_TIMEOUT)
        rec = res.last("result")
        if res.returncode != 0 or rec is None:
            pytest.fail(
                f"scenario {name} {params} did not finish cleanly:\n{res.describe()}",
                pytrace=False,
            )
        rec["_stderr"] = res.stderr
        rec["_records"] = res.records
        return rec

    return run
