"""Builds C programs with the whole core for the tests (no sanitizers,
warnings are errors): the C-core tests and the TLS tests use it.

This module does not import chirp.
"""

from __future__ import annotations

import glob
import os

from .child import ROOT, child_env, run

# The programs are built without sanitizers: a sanitizer run's preload
# stays away from them (and from the compiler).
CLEAN_ENV = child_env(preload=False)


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
    proc = run(cmd, timeout=120, env=CLEAN_ENV)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return exe


def build_c_test(out_dir, name: str) -> str:
    """Build tests/c/NAME.c into OUT_DIR/NAME."""
    return build_with_core(os.path.join("tests", "c", name + ".c"), str(out_dir / name))
