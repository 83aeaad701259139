"""The C core on its own: the C example builds warning-free, exchanges
messages without Python, and runs clean under valgrind."""

from __future__ import annotations

import os
import shutil

import pytest
from support.cbuild import CLEAN_ENV, build_c_test, build_with_core
from support.child import Completed, run

# Each program has a timeout of its own (valgrind runs up to 300 s, a build
# and a run up to 240 s): the hang guard waits longer than those.
pytestmark = pytest.mark.hang_limit(330)


@pytest.fixture(scope="module")
def c_ping(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_with_core("examples/ping.c", str(tmp_path_factory.mktemp("cbuild") / "c_ping"))


@pytest.mark.parametrize("mode", [[], ["-s"]], ids=["async", "sync"])
def test_c_example_exchanges_messages(c_ping: str, mode: list[str]) -> None:
    proc = run([c_ping, *mode, "20000", "100"], timeout=60, env=CLEAN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sent 20000, acknowledged/written 20000, failed 0, received 20000" in proc.stdout


@pytest.mark.skipif(
    shutil.which("valgrind") is None and not os.environ.get("CI"),
    reason="valgrind not installed (CI installs it)",
)
@pytest.mark.parametrize("mode", [[], ["-s"]], ids=["async", "sync"])
def test_c_example_under_valgrind(c_ping: str, mode: list[str]) -> None:
    proc = run(
        [
            "valgrind",
            "-q",
            "--leak-check=full",
            "--errors-for-leak-kinds=all",
            "--error-exitcode=99",
            c_ping,
            *mode,
            "500",
            "5000",
        ],
        timeout=300,
        env=CLEAN_ENV,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "received 500" in proc.stdout


def _run_c_test(exe: str) -> Completed:
    """Run a C test program (under valgrind's leak check when installed);
    it must exit 0."""
    argv = [exe]
    if shutil.which("valgrind"):
        argv = ["valgrind", "-q", "--leak-check=full", "--error-exitcode=99", exe]
    proc = run(argv, timeout=120, env=CLEAN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def alloc_fail(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_c_test(tmp_path_factory.mktemp("cbuild"), "alloc_fail")


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("every", [0, 2, 3, 5, 7, 11])
def test_allocation_failures_become_errors(alloc_fail: str, every: int, mode: str) -> None:
    """Every Nth allocation fails: each send still completes exactly once,
    nothing hangs, and the nodes work again once memory is back."""
    proc = run([alloc_fail, str(every), "300", mode], timeout=60, env=CLEAN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "phase 1: 300 sends" in proc.stdout
    if every == 0:
        # Every allocation fails, yet the established connection delivers.
        assert "phase 1: 300 sends, 300 ok, 0 failed, 300 received" in proc.stdout
    assert "phase 2: 20 sends, 20 ok, 0 failed, 20 received" in proc.stdout


@pytest.mark.skipif(
    shutil.which("valgrind") is None and not os.environ.get("CI"),
    reason="valgrind not installed (CI installs it)",
)
@pytest.mark.parametrize("every", [3, 7])
def test_allocation_failures_leak_nothing(alloc_fail: str, every: int) -> None:
    proc = run(
        ["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=all",
         "--error-exitcode=99", alloc_fail, str(every), "200", "sync"],
        timeout=300, env=CLEAN_ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_write_completing_as_its_connection_closes(tmp_path) -> None:
    """Regression: a synchronous message written just before its connection
    closed waited forever for an ACK; it must fail with an error."""
    proc = _run_c_test(build_c_test(tmp_path, "closing_write"))
    assert "victim completed: CH_ECONN" in proc.stdout


@pytest.mark.parametrize("mode", [[], ["handler"]])
def test_a_reset_while_writing_costs_sends_not_the_process(tmp_path, mode: list[str]) -> None:
    """SIGPIPE is ignored unless the program chose otherwise (its handler is
    kept), and a peer resetting the connection mid-write fails the sends."""
    exe = build_c_test(tmp_path, "sigpipe")
    proc = run([exe, *mode], timeout=60, env=CLEAN_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "alive: 4 sends completed, 4 failed" in proc.stdout
    want = "the program's handler" if mode else "ignored"
    assert f"SIGPIPE after ch_node_new: {want}" in proc.stdout


def test_cork_writes_queued_sends_at_once(tmp_path) -> None:
    """Sends queued under ch_node_cork are written by one write at the
    outer ch_node_uncork (the bridge corks around each batch of commands),
    and arrive in order."""
    proc = _run_c_test(build_c_test(tmp_path, "cork"))
    assert "corked: 50 queued, writing 0" in proc.stdout
    assert "uncorked: writing 1, 50 messages in the write, 0 queued" in proc.stdout
    assert "received 50, in order: yes" in proc.stdout


def test_inbox_ring(tmp_path) -> None:
    """The bridge's inbox ring: random takes and give-backs never overlap
    or corrupt held blocks, refuse only when full, wrap and reclaim."""
    proc = _run_c_test(build_c_test(tmp_path, "inbox"))
    assert "inbox: ok" in proc.stdout, proc.stdout


def test_announced_waits(tmp_path) -> None:
    """The bridge's announced waits (what arequest uses): results through
    the done fd, abandoned requests' replies dropped, CH_ECLOSED at close,
    untaken results freed with the bridge (valgrind's leak check)."""
    proc = _run_c_test(build_c_test(tmp_path, "announced"))
    assert "announced waits: ok" in proc.stdout, proc.stdout


def test_a_send_callback_sending_while_a_write_is_built(tmp_path) -> None:
    """Regression: a message too big for the peer fails inside the flush
    that builds a write; its callback's sends (same peer, another one) must
    wait for that write, not build theirs over it (it crashed before)."""
    proc = _run_c_test(build_c_test(tmp_path, "nested_flush"))
    assert "big: message too large" in proc.stdout, proc.stdout
    assert "nested flush: ok" in proc.stdout, proc.stdout


def test_take_buffer(tmp_path) -> None:
    """ch_message_take_buffer: nothing to take from a slot's own buffer; a
    big message's buffer taken once, valid past its release and the
    nodes' end, and reused for the next big message once freed."""
    proc = _run_c_test(build_c_test(tmp_path, "take_buffer"))
    assert "take buffer: ok" in proc.stdout, proc.stdout
