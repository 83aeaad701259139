"""The core under allocation failures with TLS (tests/c/alloc_fail.c in a
network namespace, so the two nodes encrypt): every send completes exactly
once, nothing hangs, a synchronous success was received, and both nodes work
again once memory is back. With ``tls+openssl`` OpenSSL's own allocations
fail too, from a count of their own."""

import os
import shutil

import pytest
from support.cbuild import build_c_test
from support.netns import ADDRESS, run_in_namespace


@pytest.fixture(scope="module")
def alloc_fail(tmp_path_factory):
    return build_c_test(tmp_path_factory.mktemp("cbuild"), "alloc_fail")


def _run(alloc_fail, pki, every, mode, tls, valgrind=False, count=300, env=None):
    argv = [alloc_fail, str(every), str(count), mode, tls, pki["a"], pki["dh"], ADDRESS]
    if valgrind:
        # Not "still reachable": the connection BIO's method is made once
        # per process and kept (tls.c), as OpenSSL keeps its own.
        argv = ["valgrind", "-q", "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect,possible",
                "--error-exitcode=99", *argv]  # fmt: skip
    res = run_in_namespace(argv, timeout=300 if valgrind else 60, env=env, preload=False)
    assert res.returncode == 0 and not res.timed_out, res.describe()
    assert f"phase 1: {count} sends" in res.stdout, res.describe()
    assert "phase 2: 20 sends, 20 ok, 0 failed, 20 received" in res.stdout, res.describe()
    return res.stdout


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_established_tls_connection_needs_no_allocation(namespace, pki, alloc_fail, mode):
    """Warmed up, then every allocation of the core fails: the encrypted
    connection still delivers every message (its buffers are its own)."""
    out = _run(alloc_fail, pki, 0, mode, "tls")
    assert "phase 1: 300 sends, 300 ok, 0 failed, 300 received" in out, out


@pytest.mark.parametrize("tls", ["tls", "tls+openssl"])
@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("every", [3, 7, 11])
def test_tls_allocation_failures_become_errors(namespace, pki, alloc_fail, every, mode, tls):
    """Every Nth allocation fails (the handshakes' too). alloc_fail.c exits
    non-zero if a send never completed (watchdog), if a synchronous success
    was not received, or if no allocation failed at all."""
    out = _run(alloc_fail, pki, every, mode, tls)
    failures = int(out.split(" allocations failed on purpose")[0].rsplit(" ", 1)[1])
    assert failures > 0, out


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_tls_output_buffer_failure_fails_its_messages(namespace, pki, alloc_fail, mode):
    """With every 7th allocation failing, growing the connection's buffer
    for encrypted output fails during data writes (in every run here): that
    connection closes, its messages fail saying why, and the node goes on."""
    out = _run(alloc_fail, pki, 7, mode, "tls", env={"VERBOSE": "1"})
    assert "CH_ECONN: 198.18.0.1:" in out and "write failed: not enough memory" in out, out


@pytest.mark.skipif(
    shutil.which("valgrind") is None and not os.environ.get("CI"),
    reason="valgrind not installed (CI installs it)",
)
@pytest.mark.parametrize("tls", ["tls", "tls+openssl"])
@pytest.mark.hang_limit(360)  # valgrind may take up to its 300 s timeout
def test_tls_allocation_failures_leak_nothing(namespace, pki, alloc_fail, tls):
    _run(alloc_fail, pki, 7, "sync", tls, valgrind=True, count=200)
