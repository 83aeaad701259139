"""Smoke test of the benchmark harness (``python bench/run.py --quick``).

It checks that the harness runs and reports; it never asserts speed.  The
pyzmq and libchirp peers are optional: without them their rows say
"skipped", but chirp's own rows must carry positive rates.  The libchirp
peer is the one in CHIRP_LIBCHIRP_VENV if that is set (as for the interop
tests), else the harness's own default.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "bench", "run.py")


def _have_zmq() -> bool:
    try:
        import zmq  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler for scenario 5")
    work = tmp_path_factory.mktemp("bench")
    out = work / "bench.json"
    # LD_PRELOAD stays: under .ci/sanitized the harness imports the ASan
    # build of chirp (the harness keeps it from libchirp's processes).
    env = {k: v for k, v in os.environ.items() if k != "CHIRP_SRC"}
    lc_python = os.path.join(os.environ.get("CHIRP_LIBCHIRP_VENV", ""), "bin", "python")
    lc = ["--libchirp-python", lc_python] if os.environ.get("CHIRP_LIBCHIRP_VENV") else []
    # Run outside the tree and without --src: the harness finds the tree it
    # is in (scenario 5 builds from it) and imports the installed chirp.
    proc = subprocess.run(
        [
            sys.executable, RUN, "--quick",
            "--scenario", "1", "--scenario", "3", "--scenario", "5",
            "--json", str(out), *lc,
        ],
        capture_output=True, text=True, timeout=600, env=env, cwd=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"source tree: {ROOT}\n" in proc.stderr, proc.stderr[-2000:]
    return json.loads(out.read_text()), proc.stdout


def _rows(data: dict, scenario: int, system: str) -> list[dict]:
    return [r for r in data["rows"] if r["scenario"] == scenario and r["system"] == system]


def _positive(row: dict) -> None:
    assert row.get("ok"), row
    assert isinstance(row.get("rate"), float) and row["rate"] > 0, row


def test_scenario1_chirp_rows(bench: tuple[dict, str]) -> None:
    data, table = bench
    for system in ("chirp", "chirp batch API"):
        rows = _rows(data, 1, system)
        assert sorted(r["size"] for r in rows) == [64, 1024, 1024 * 1024], rows
        for r in rows:
            _positive(r)
            assert r["count"] > 0
    assert "async stream" in table and "chirp batch API" in table


def test_scenario1_peers_present_or_skipped(bench: tuple[dict, str]) -> None:
    data, _ = bench
    for system in ("pyzmq PUSH/PULL", "libchirp async"):
        rows = _rows(data, 1, system)
        assert len(rows) == 3, (system, rows)
        for r in rows:
            if r.get("skipped"):
                assert r["note"].startswith("skipped:")
            else:
                _positive(r)
                assert r.get("ratio", 0) > 0  # chirp / peer was computed
    if _have_zmq():
        assert not any(r.get("skipped") for r in _rows(data, 1, "pyzmq PUSH/PULL"))


def test_scenario3_request_reply(bench: tuple[dict, str]) -> None:
    data, table = bench
    (row,) = _rows(data, 3, "chirp request()")
    _positive(row)
    assert 0 < row["p50_us"] <= row["p99_us"], row
    assert "request/reply round trip" in table
    (z,) = _rows(data, 3, "pyzmq REQ/REP")
    if not z.get("skipped"):
        _positive(z)


def test_scenario5_c_core(bench: tuple[dict, str]) -> None:
    data, table = bench
    for system in ("chirp C async", "chirp C sync"):
        rows = _rows(data, 5, system)
        assert {r["case"] for r in rows} == {
            "C core, one process (ping.c)",
            "C core, two processes (c_stream.c)",
        }, rows
        for r in rows:
            _positive(r)
    assert "ping.c" in table and "c_stream.c" in table


def test_cli_bench_points_to_the_source_tree() -> None:
    """The package holds no benchmark: ``python -m chirp bench`` only says
    how to run bench/run.py, with the arguments it was given."""
    import importlib.util

    assert importlib.util.find_spec("chirp.bench") is None
    proc = subprocess.run(
        [sys.executable, "-m", "chirp", "bench", "--quick", "--scenario", "1"],
        capture_output=True, text=True, timeout=60, cwd=os.path.join(ROOT, "examples"),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{RUN} --quick --scenario 1" in proc.stderr, proc.stderr


def _build_tls_program(tmp_path, name: str) -> tuple[str, str, dict[str, str]]:
    """Builds bench/NAME.c warning-free (an OpenSSL-only program) and makes
    a certificate chain for it; returns the program, the PEM and the env."""
    from chirp.pki import make_pki

    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    exe = str(tmp_path / name)
    build = subprocess.run(
        ["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
         os.path.join(ROOT, "bench", name + ".c"), "-lssl", "-lcrypto", "-o", exe],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert build.returncode == 0 and build.stderr == "", build.stderr
    return exe, str(make_pki(tmp_path / "pki", ["node"])["node"]), env


def test_tls_cost_program_runs(tmp_path) -> None:
    """bench/tls_cost.c (OpenSSL's TLS layer alone, for the TLS scenario's
    ceiling) builds warning-free and round-trips its data intact."""
    exe, pem, env = _build_tls_program(tmp_path, "tls_cost")
    run = subprocess.run([exe, pem, "3"], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 x 1 MiB, TLS 1.3 AES-128-GCM: encrypt" in run.stdout


@pytest.mark.parametrize("mode", ["tls", "tls-gather", "plain"])
def test_tls_ceiling_program_runs(tmp_path, mode: str) -> None:
    """bench/tls_ceiling.c (the bare C stream the TLS target is judged
    against) builds warning-free and streams every byte in each mode."""
    exe, pem, env = _build_tls_program(tmp_path, "tls_ceiling")
    run = subprocess.run(
        [exe, pem, mode, "20"], capture_output=True, text=True, timeout=60, env=env
    )
    assert run.returncode == 0, run.stdout + run.stderr
    kind = "plain" if mode == "plain" else "TLS"
    assert f"{kind} receiver: " in run.stdout and f"{kind} sender: " in run.stdout, run.stdout
    bad = subprocess.run([exe, pem, "rot13"], capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "usage:" in bad.stderr
