"""The documentation site builds with Sphinx, warnings as errors, and its
API page documents the public names (docs/conf.py, docs/*.md)."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from support.child import ROOT, child_env, run

import chirp

pytestmark = pytest.mark.hang_limit(240)


def _require(*modules: str) -> None:
    """Skip without Sphinx and myst-parser (bash .ci/setup --test installs
    them); fail instead when the environment variable CI is set."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"not installed: {', '.join(missing)} (bash .ci/setup --test)"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: the docs must build)", pytrace=False)
        pytest.skip(msg)


def test_docs_build_without_warnings(tmp_path):
    _require("sphinx", "myst_parser")
    out = tmp_path / "html"
    argv = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    proc = run([*argv, os.path.join(ROOT, "docs"), out], timeout=200, env=child_env())
    assert proc.returncode == 0, proc.describe()
    for page in ("index", "guide", "api", "cli", "options", "protocol", "architecture"):
        assert (out / f"{page}.html").is_file(), page
    api = (out / "api.html").read_text()
    for name in ("Node.arequest", "Node.send_async", "Node.serve", "pki.make_pki"):
        assert f'id="chirp.{name}"' in api, name
    for name in chirp.__all__:
        if name != "__version__":
            assert f'id="chirp.{name}"' in api, f"{name} is not on the API page"
    # The shell tool's help is taken from its parser; the changelog included.
    assert "usage: chirp send" in (out / "cli.html").read_text()
    assert "0.1.0 (unreleased)" in (out / "changelog.html").read_text()
