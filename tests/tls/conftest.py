"""Fixtures of the TLS tests.

- ``pki`` / ``other_pki``: two PKIs made once per session with
  ``chirp.pki.make_pki`` (different CAs).
- ``namespace``: network namespaces work here (support.netns.require: the
  test is skipped without them, or FAILS when the environment variable CI
  is set).
- ``scenario``: ``scenario(name, **params)`` runs the scenario
  tls/scenarios/NAME.py in a fresh network namespace, with both PKIs in
  its parameters, and returns its ``result`` record.
"""

import json
import os

import pytest
from support import netns
from support.child import python

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
    return netns.require()


@pytest.fixture
def scenario(namespace, pki, other_pki):
    def run(name, **params):
        full = dict(pki)
        full["other"] = other_pki
        full.update(params)
        res = netns.run_in_namespace(
            python("tls.scenario", name, json.dumps(full)),
            timeout=SCENARIO_TIMEOUT,
            env={"PYTHONFAULTHANDLER": "1"},
        )
        rec = res.last("result")
        if res.returncode != 0 or rec is None:
            pytest.fail(
                f"scenario {name} {params} did not finish cleanly:\n{res.describe()}",
                pytrace=False,
            )
        rec["_stderr"] = res.stderr
        rec["_records"] = res.records()
        return rec

    return run
