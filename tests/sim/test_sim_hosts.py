"""chirp across simulated hosts with real network faults (support/hosts.py):
each host is a network namespace with its own address, so every
connection is TLS.  The invariants of the failure tests hold: every send
ends in exactly one result, every success was processed by a worker
(it prints a message before releasing it), nothing is lost silently.

Host 1 runs the producer (support.sim_producer), host 2 the router (the
`chirp router` command) or a worker, host 3 the workers
(support.topo_worker)."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest
from support.child import Child, python
from support.hosts import Hosts, missing_tools

pytestmark = pytest.mark.hang_limit(300)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> str:
    from chirp.pki import make_pki

    return str(make_pki(tmp_path_factory.mktemp("simpki"), ["node"], days=30)["node"])


@pytest.fixture
def hosts():
    missing = missing_tools()
    if missing or os.geteuid() != 0:
        why = f"simulated hosts need root and {missing or 'ip, nft, tc'}"
        if os.environ.get("CI"):
            pytest.fail(why + " (CI is set: these tests must run)", pytrace=False)
        pytest.skip(why)
    with Hosts(3) as h:
        yield h


class Run:
    """The programs of one test, stopped at its end."""

    def __init__(self, hosts: Hosts, cert: str) -> None:
        self.hosts, self.cert, self.children = hosts, cert, []
        self.workers: list[Child] = []

    def worker(self, host: int, port: int, slow: float = 0.3) -> str:
        argv = python("support.topo_worker", port, "--cert", self.cert, "--slow", slow)
        child = Child(self.hosts.argv(host, argv), name=f"worker {host}:{port}")
        child.expect_line("READY", 30)
        self.children.append(child)
        self.workers.append(child)
        return f"{self.hosts.addr(host)}:{port}"

    def router(self, host: int, port: int, targets: list[str], timeout: float) -> str:
        argv = [sys.executable, "-m", "chirp", "router", "--port", port, "--cert-chain",
                self.cert, "--timeout", timeout]  # fmt: skip
        for t in targets:
            argv += ["--to", t]
        child = Child(self.hosts.argv(host, argv), name=f"router {host}:{port}")
        self.children.append(child)
        time.sleep(1.0)  # it prints to stderr only; give it a moment to listen
        assert child.alive, child.describe()
        return f"{self.hosts.addr(host)}:{port}"

    def producer(self, host: int, target: str, timeout: float) -> Child:
        argv = python("support.sim_producer", target, "--cert", self.cert, "--timeout", timeout)
        child = Child(self.hosts.argv(host, argv), name=f"producer {host}", stdin=True)
        child.expect_line("READY", 30)
        self.children.append(child)
        return child

    def processed(self) -> list[str]:
        """What the workers printed as processed (they are stopped, and
        each held no more message memory than its budget)."""
        got = []
        for w in self.workers:
            w.close(grace=10)
            lines = w.read_to_end(10)
            got += [bytes.fromhex(x[4:]).decode() for x in lines if x.startswith("GOT ")]
            stats = [json.loads(x[6:]) for x in lines if x.startswith("STATS ")]
            assert stats, f"{w.name} printed no STATS line: {lines[-3:]}"
            assert stats[0]["message_memory"] <= stats[0]["max_memory"], stats[0]
        return got

    def close(self) -> None:
        for c in reversed(self.children):
            c.close(grace=5)


def results(producer: Child, command: str, timeout: float) -> list[tuple[str, str, float]]:
    """Run a command; its results: (data, "ok" or the error's name, seconds)."""
    producer.write_line(command)
    out = []
    while True:
        line = producer.readline(timeout, "a result")
        if line == "END":
            return out
        if line.startswith("R "):
            _, data, what, secs = line.split()
            out.append((data, what, float(secs)))


def check_invariants(res: list[tuple[str, str, float]], processed: list[str], timeout: float):
    """Every success was processed; every failure is a connection or
    timeout error; every send ended within its bound."""
    for data, what, secs in res:
        if what == "ok":
            assert data in processed, f"{data} succeeded but no worker processed it"
        else:
            assert what in ("ChirpTimeoutError", "ChirpConnectionError", "TLSError"), what
        assert secs <= 2 * timeout + 10, f"{data} took {secs:.1f} s"


def test_pipeline_across_three_hosts_with_loss_and_a_bandwidth_limit(hosts, cert):
    """producer (host 1) -> router (host 2) -> 2 workers (host 3), TLS,
    every host dropping 1 % of what it receives and sending at most
    20 Mbit/s: 150 synchronous sends all succeed, each processed."""
    run = Run(hosts, cert)
    try:
        workers = [run.worker(3, 4001), run.worker(3, 4002)]
        entry = run.router(2, 4000, workers, timeout=5.0)
        for k in (1, 2, 3):
            hosts.loss(k, 1)
            hosts.bandwidth(k, "20mbit")
        producer = run.producer(1, entry, timeout=10.0)
        res = results(producer, "send 150", timeout=120)
        processed = run.processed()
    finally:
        run.close()
    assert len(res) == 150  # every send ended in one result
    check_invariants(res, processed, 10.0)
    failed = [r for r in res if r[1] != "ok"]
    assert not failed, f"{len(failed)} failed under 1 % loss: {failed[:3]}"


def test_a_partition_of_ten_seconds_heals(hosts, cert):
    """producer (host 1) -> worker (host 2), one send every 0.2 s; a
    10 s partition between them: sends fail during it (timeouts), and
    succeed again once it heals; every success was processed."""
    run = Run(hosts, cert)
    try:
        target = run.worker(2, 4000)
        producer = run.producer(1, target, timeout=2.0)
        before = results(producer, "send 5", timeout=60)
        hosts.partition(1, 2)
        during = results(producer, "stream 10 0.2", timeout=60)
        hosts.heal(1, 2)
        after = results(producer, "stream 15 0.2", timeout=90)
        processed = run.processed()
    finally:
        run.close()
    check_invariants(before + during + after, processed, 2.0)
    assert all(w == "ok" for _, w, _ in before), before
    assert any(w != "ok" for _, w, _ in during), "the partition failed nothing"
    assert after[-5:] and all(w == "ok" for _, w, _ in after[-5:]), after[-10:]


def test_a_host_cut_while_holding_unacknowledged_messages(hosts, cert):
    """The worker's host (2) holds 6 slow messages, unacknowledged, when
    its link goes down: each of the producer's sends ends in an error
    within its bound (no hang); once the link is back, sends succeed."""
    run = Run(hosts, cert)
    try:
        target = run.worker(2, 4000, slow=3.0)
        producer = run.producer(1, target, timeout=2.0)
        assert results(producer, "send 1", timeout=60)[0][1] == "ok"  # connected
        producer.write_line("batch 6 slow-")
        producer.expect_line("WRITTEN", 30)
        time.sleep(0.5)  # the messages are at the worker
        hosts.cut(2)
        cut = []
        while True:
            line = producer.readline(60, "a result")
            if line == "END":
                break
            _, data, what, secs = line.split()
            cut.append((data, what, float(secs)))
        hosts.restore(2)
        again = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            again += results(producer, "send 1", timeout=60)
            if again[-1][1] == "ok":
                break
        processed = run.processed()
    finally:
        run.close()
    assert len(cut) == 6
    assert all(w != "ok" for _, w, _ in cut), cut  # slow: none released in time
    check_invariants(cut + again, processed, 2.0)
    assert again and again[-1][1] == "ok", again
