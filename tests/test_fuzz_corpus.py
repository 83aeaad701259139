"""The fuzz harnesses (tests/fuzz, libFuzzer) replay their committed corpus:
every seed and every crash found so far (as a regression input) runs
without a failed check or a sanitizer report.  The fuzzing itself runs in
CI through .ci/fuzz, and for longer by hand (bash .ci/fuzz 3600)."""

from __future__ import annotations

import os

import pytest
from support.child import ROOT, child_env, run

HARNESSES = ["fuzz_reader", "fuzz_wire", "fuzz_inbox", "fuzz_tls"]
pytestmark = pytest.mark.hang_limit(300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp("fuzz"))
    proc = run(
        ["bash", os.path.join(ROOT, "tests", "fuzz", "build.sh"), out],
        timeout=240, env=child_env(preload=False),
    )  # fmt: skip
    assert proc.returncode == 0, proc.describe()
    return out


@pytest.mark.parametrize("name", HARNESSES)
def test_the_corpus_replays_cleanly(built: str, name: str) -> None:
    corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", name)
    inputs = os.listdir(corpus)
    assert len(inputs) >= 2, f"{corpus} has no seeds"
    proc = run(
        [os.path.join(built, name), "-runs=0", corpus],
        timeout=120, env=child_env(preload=False),
    )  # fmt: skip
    assert proc.returncode == 0, proc.describe()
    assert "INITED" in proc.stderr or "Running" in proc.stderr, proc.stderr[-2000:]
