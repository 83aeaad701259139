"""Builds C programs with the whole core for the tests (no sanitizers,
warnings are errors); shared by the C-core tests and the TLS tests.

This module does not import chirp.
"""

from __future__ import annotations

import glob
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The programs are built without sanitizers: keep a sanitizer run's preload away from them.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def build_with_core(source: str, exe: str) -> str:
    """Compile SOURCE (relative to the repository) with csrc/*.c into EXE;
    fails the test on any error or warning."""
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.c"), recursive=True))
    cmd = [
        "cc", "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
        "-I", os.path.join(ROOT, "csrc", "include"), "-I", os.path.join(ROOT, "csrc"),
        os.path.join(ROOT, source),
        *sources, "-luv", "-lssl", "-lcrypto", "-o", exe,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=CLEAN_ENV)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return exe


def build_c_test(out_dir, name: str) -> str:
    """Build tests/c/NAME.c into OUT_DIR/NAME."""
    return build_with_core(os.path.join("tests", "c", name + ".c"), str(out_dir / name))
