"""chirp is typed: mypy --strict passes on the package and on a script of
typical use (against the installed package, through its py.typed), and
rejects classic mistakes; Node's keywords are the option table."""

from __future__ import annotations

import inspect
import os
import re
import sys

from support.child import ROOT, TESTS, run

import chirp
from chirp.config import OPTIONS

HERE = os.path.join(TESTS, "typing")


def mypy(*args, cache: str) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", cache]
    done = run([*cmd, *args], timeout=300, cwd=HERE)
    return done.returncode, done.stdout + done.stderr


def test_the_package_passes_mypy_strict(tmp_path):
    rc, out = mypy(os.path.join(ROOT, "src", "chirp"), cache=str(tmp_path))
    assert rc == 0, out


def test_typical_use_passes_and_classic_mistakes_are_caught(tmp_path):
    rc, out = mypy("typical_use.py", cache=str(tmp_path))
    assert rc == 0, out
    rc, out = mypy("mistakes.py", cache=str(tmp_path))
    assert rc == 1, out
    found = {
        (int(m[1]), m[2]) for m in re.finditer(r"mistakes\.py:(\d+): error: .*\[([a-z-]+)\]", out)
    }
    with open(os.path.join(HERE, "mistakes.py")) as f:
        marked = {
            (n, m[1])
            for n, line in enumerate(f, 1)
            if (m := re.search(r"# error: ([a-z-]+)", line))
        }
    assert len(marked) == 6 and found == marked, out


def test_node_takes_every_option_as_a_typed_keyword():
    params = inspect.signature(chirp.Node.__init__).parameters
    keywords = {n: p for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords.pop("on_event").default is None  # not an option: a callback
    fields = {f.name: f for f in chirp.Config.__dataclass_fields__.values()}
    assert list(keywords) == list(fields) == [o.name for o in OPTIONS]
    for o in OPTIONS:
        assert keywords[o.name].annotation == fields[o.name].type == o.pytype, o.name
        assert fields[o.name].default == o.default, o.name


def test_keywords_beside_a_config_override_it_and_typos_are_named():
    cfg = chirp.Config(port=0, timeout=2.0, bind_v6="")
    with chirp.Node(cfg, timeout=3.0) as node:
        assert node.config.timeout == 3.0 and node.config.bind_v6 == ""
    try:
        chirp.Node(prot=0)  # type: ignore[call-arg]
    except TypeError as e:
        assert "prot" in str(e)
    else:
        raise AssertionError("Node(prot=0) was taken")
