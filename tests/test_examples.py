"""The Python examples in examples/ run and print what they say."""

from __future__ import annotations

import ast
import os
import re
import sys

from support import netns
from support.child import ROOT, Completed, child_env, run


def _example(name: str, *args: str) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "examples", name), *args]


def run_example(name: str, *args: str, timeout: float = 60) -> Completed:
    """Run examples/NAME to its end; it must exit 0."""
    proc = run(_example(name, *args), timeout=timeout, env=child_env())
    assert proc.returncode == 0, proc.describe()
    return proc


def expect(out: str, *texts: str) -> None:
    """Each of texts is in out."""
    missing = [t for t in texts if t not in out]
    assert not missing, f"missing {missing} in:\n{out}"


def expect_order(out: str, *texts: str) -> None:
    """Texts are in out, in this order."""
    expect(out, *texts)
    where = [out.index(t) for t in texts]
    assert where == sorted(where), f"not in the order {list(texts)}:\n{out}"


def test_asyncio_echo_example_runs():
    proc = run_example("asyncio_echo.py")
    expect(
        proc.stdout,
        "[b'HELLO 0', b'HELLO 1', b'HELLO 2'] ...",
        "1000 sent and acknowledged, 1000 answers read",
        "timed out: its reply, if it comes, is dropped",
    )
    assert "handler failed" not in proc.stderr, proc.stderr


def test_blocking_example_runs():
    out = run_example("blocking.py").stdout
    ports = re.match(r"alice listens on port (\d+), bob on port \d+\n", out)
    assert ports, out
    # Bob prints a message before he releases it, Alice after her send returned.
    expect_order(
        out,
        f"bob got b'hello' from port {ports.group(1)}",
        "alice: send returned, so bob has released the message",
        "alice: the answer is b'4'",
        "bob: nothing more within 0.2 s (TimeoutError)",
        "alice: sending to a closed port failed: ChirpConnectionError",
    )


def test_futures_example_runs():
    expect(
        run_example("futures.py").stdout,
        "100 sends done (100 acknowledged), 0 pending",
        "replies, sorted: [b'A', b'B', b'C']",
        "unanswered request: ChirpTimeoutError",
        "callback ran: True",
    )


def test_serve_example_runs():
    proc = run_example("serve.py")
    expect(
        proc.stdout,
        "squares: [0, 1, 4, 9, 16, 25] ... header b'squared'",
        "b'oops' was rejected: ValueError: invalid literal for int() with base 10: b'oops'",
    )
    most = re.search(r"serve\(\) returned; at most (\d+) handlers ran at once", proc.stdout)
    assert most and 1 <= int(most.group(1)) <= 4, proc.stdout
    # The handler's exception is logged with the message's origin.
    expect(proc.stderr, "handler failed on the message from 127.0.0.1:", "ValueError")


def test_router_example_runs():
    out = run_example("router.py").stdout
    for i in range(4):  # round robin, each answered through the router
        w = 1 + i % 2
        expect_order(out, f"worker {w}: job {i}", f"producer: job {i} answered: done by worker {w}")
    expect(out, "producer: poison rejected: ValueError: cannot do this job")
    for i in (4, 5):  # worker 1 is gone: the router skips it
        expect(out, f"worker 2: job {i}", f"producer: job {i} answered: done by worker 2")
    expect(out, "producer: job 6 failed: no target took the message")
    # Each answer came back through the router; whether the last forward to
    # a worker also got its ACK depends on the worker closing after it.
    counts = re.search(r"router: (\{.*\})", out)
    assert counts and ast.literal_eval(counts.group(1))["replies"] == 6, out


def test_tls_example_on_loopback_is_plaintext():
    expect(
        run_example("tls.py").stdout,
        "peers at 127.0.0.1: plaintext (loopback)",
        "made alpha.pem, beta.pem, ca.pem, dh.pem",
        "cert_chain_pem without a key: TLSError at start",
        "beta got b'hello from alpha' (same CA)",
        # Loopback is plaintext: a certificate from another CA is not looked at.
        "beta got b'hello from mallory': over loopback no certificate is checked",
    )


def test_tls_example_in_a_namespace_refuses_another_ca():
    address = netns.require()
    res = netns.run_in_namespace(_example("tls.py", address), timeout=60)
    assert res.returncode == 0 and not res.timed_out, res.describe()
    expect(
        res.stdout,
        f"peers at {address}: TLS",
        "beta got b'hello from alpha' (same CA)",
        "mallory (another CA) was refused: TLSError",
    )
    assert "beta got b'hello from mallory'" not in res.stdout, res.describe()
