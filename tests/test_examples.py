"""The Python examples in examples/ run and print what they say."""

from __future__ import annotations

import os
import sys

from support.child import ROOT, child_env, run


def test_asyncio_echo_example_runs():
    proc = run(
        [sys.executable, os.path.join(ROOT, "examples", "asyncio_echo.py")],
        timeout=60,
        env=child_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[b'HELLO 0', b'HELLO 1', b'HELLO 2'] ..." in proc.stdout
    assert "1000 sent and acknowledged, 1000 answers read" in proc.stdout
    assert "timed out: its reply, if it comes, is dropped" in proc.stdout
    assert "handler failed" not in proc.stderr, proc.stderr
