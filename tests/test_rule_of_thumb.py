"""The seed's rule of thumb, on random small topologies of real processes:
1-3 producers (nodes of this process, one thread each), 0-2 routers in a
chain (`chirp router` processes), 1-3 workers (support.topo_worker
processes); per node synchronous or not and max_slots 1-4; actions: send,
request, a message the worker's handler raises on, a slow message,
killing a worker (SIGKILL) and starting it again on its port, and
stalling a worker as a whole (SIGSTOP, SIGCONT 3 s later).

Always: every send ends in exactly one result within a bound; every
success was processed by a worker (it printed the message before
releasing it); every reply belongs to its request; a rejected message
reaches the producer as RejectedError whatever the number of routers.
With the rule (workers asynchronous, producers and routers synchronous)
and no kill or stall: nothing fails but the rejected messages -- no
lock-up.  Off the rule, the seed's lock-up itself (two synchronous nodes
sending to each other before they read) ends in timeouts within a bound
(test_the_seed_lock_up).

CHIRP_TOPOLOGY_EXAMPLES=200 runs more examples than CI's 8, and
CHIRP_TOPOLOGY_BIG=1 bigger topologies (up to 5 producers, 3 routers, 5
workers); the counts are printed at the end of the run (pytest -s)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.child import Child, python
from support.net import LOCAL, free_port_v4_and_v6
from support.raw import connect

import chirp

EXAMPLES = int(os.environ.get("CHIRP_TOPOLOGY_EXAMPLES", "8"))
pytestmark = pytest.mark.hang_limit(max(600, 30 * EXAMPLES))
# CHIRP_TOPOLOGY_BIG=1: up to 5 producers, 3 routers and 5 workers (else 3, 2, 3)
BIG = os.environ.get("CHIRP_TOPOLOGY_BIG", "") not in ("", "0")
MOST, MOST_ROUTERS = (5, 3) if BIG else (3, 2)
COUNTS: Counter[str] = Counter()
TIMEOUT = 2.0  # every node's


@dataclass(frozen=True)
class Topology:
    producers: tuple[tuple[bool, int], ...]  # (synchronous, max_slots) each
    routers: tuple[int, ...]  # max_slots of each, in the chain's order
    workers: tuple[tuple[bool, int], ...]  # (synchronous, max_slots)

    @property
    def by_the_rule(self) -> bool:
        return all(s for s, _ in self.producers) and not any(s for s, _ in self.workers)


def _nodes(sync: st.SearchStrategy[bool]) -> st.SearchStrategy[tuple[tuple[bool, int], ...]]:
    return st.lists(st.tuples(sync, st.integers(1, 4)), min_size=1, max_size=MOST).map(tuple)


_routers = st.lists(st.integers(1, 4), max_size=MOST_ROUTERS).map(tuple)
# Half by the rule (producers synchronous, workers asynchronous), half any.
topologies = st.one_of(
    st.builds(Topology, _nodes(st.just(True)), _routers, _nodes(st.just(False))),
    st.builds(Topology, _nodes(st.booleans()), _routers, _nodes(st.booleans())),
)
ACTIONS = st.sampled_from(["send", "send", "request", "request", "poison", "slow", "kill", "stall"])
STALL = 1.5 * TIMEOUT  # a stalled worker (SIGSTOP) runs again after this
plans = st.lists(st.lists(ACTIONS, min_size=1, max_size=6), min_size=MOST, max_size=MOST)


class Worker:
    def __init__(self, port: int, sync: bool, slots: int) -> None:
        self.port, self.sync, self.slots = port, sync, slots
        self.got: list[bytes] = []
        self.child: Child | None = None
        self.start()

    def start(self) -> None:
        args = [self.port, "--slots", self.slots] + (["--sync"] if self.sync else [])
        self.child = Child(python("support.topo_worker", *args), name=f"worker {self.port}")
        self.child.expect_line("READY", 20)

    def collect(self) -> None:
        """The GOT lines it printed (it was killed or stopped)."""
        assert self.child is not None
        for line in self.child.read_to_end(10):
            if line.startswith("GOT "):
                self.got.append(bytes.fromhex(line[4:]))

    def kill_and_restart(self) -> None:
        assert self.child is not None
        self.child.send_signal(signal.SIGKILL)
        self.child.wait(10)
        self.collect()
        self.start()

    def stop(self) -> None:
        assert self.child is not None
        self.child.close(grace=5)
        self.collect()


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            connect(port).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_routers(topo: Topology, workers: list[Worker]) -> tuple[list[Child], tuple[str, int]]:
    """The chain, last first; returns it and where producers send."""
    routers: list[Child] = []
    targets = [f"{LOCAL}:{w.port}" for w in workers]
    for slots in reversed(topo.routers):
        port = free_port_v4_and_v6()
        argv = [sys.executable, "-m", "chirp", "router", "--port", port, "--plaintext"]
        argv += ["--timeout", TIMEOUT, "--max-slots", slots]
        for t in targets:
            argv += ["--to", t]
        routers.append(Child(argv, name=f"router {port}"))
        wait_listening(port)
        targets = [f"{LOCAL}:{port}"]
    host, port = targets[0].rsplit(":", 1)
    return routers, (host, int(port))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(topo=topologies, actions=plans)
def test_the_rule_of_thumb(topo: Topology, actions: list[list[str]]) -> None:
    workers = [Worker(free_port_v4_and_v6(), s, n) for s, n in topo.workers]
    routers, entry = start_routers(topo, workers)
    producers = [
        chirp.Node(port=0, bind_v6="", disable_encryption=True, synchronous=s, max_slots=n,
                   timeout=TIMEOUT)
        for s, n in topo.producers
    ]  # fmt: skip
    results: list[tuple[bool, str, bytes, object]] = []  # (sync producer, kind, data, outcome)
    lock = threading.Lock()
    kills, stalls = [0], [0]
    timers: list[threading.Timer] = []

    def produce(i: int, node: chirp.Node) -> None:
        for j, kind in enumerate(actions[i]):
            data = b"%s-%d-%d" % (kind.encode(), i, j)
            if kind == "kill":
                with lock:
                    workers[j % len(workers)].kill_and_restart()
                    kills[0] += 1
                continue
            if kind == "stall":  # the worker as a whole stops reading for a while
                with lock:
                    w = workers[j % len(workers)]
                    assert w.child is not None
                    w.child.send_signal(signal.SIGSTOP)
                    timer = threading.Timer(STALL, w.child.send_signal, (signal.SIGCONT,))
                    timers.append(timer)
                    timer.start()
                    stalls[0] += 1
                continue
            try:
                if kind == "request":
                    out: object = node.request(entry, data, timeout=4 * TIMEOUT)
                else:
                    node.send(entry, data)
                    out = None
            except chirp.ChirpError as e:
                out = e
            with lock:
                results.append((topo.producers[i][0], kind, data, out))

    threads = [
        threading.Thread(target=produce, args=(i, n), daemon=True) for i, n in enumerate(producers)
    ]
    started = time.monotonic()
    try:
        for t in threads:
            t.start()
        bound = 12 * TIMEOUT * (len(topo.routers) + 1) + 10
        for t in threads:
            t.join(max(0.1, bound - (time.monotonic() - started)))
        hung = [t for t in threads if t.is_alive()]
        assert not hung, f"a producer did not finish within {bound} s: {topo}"
    finally:
        for timer in timers:
            timer.join()
        for p in producers:
            p.close(linger=0)
        for r in routers:
            r.close(grace=5)
        for w in workers:
            w.stop()

    processed = {d for w in workers for d in w.got}
    expected = sum(1 for a in actions[: len(producers)] for k in a if k not in ("kill", "stall"))
    trouble = kills[0] + stalls[0]  # then sends may fail for it
    assert len(results) == expected  # every send ended in one result
    for sync, kind, data, out in results:
        if kind == "poison":
            if isinstance(out, chirp.RejectedError) and out.reason == "ValueError: poison":
                COUNTS["rejections"] += 1
            elif out is not None and topo.by_the_rule and not trouble:  # else any error
                raise AssertionError(f"poison {data!r}: {out!r}")
            continue
        if isinstance(out, BaseException):
            COUNTS["failures"] += 1
            if topo.by_the_rule and not trouble:
                raise AssertionError(f"{kind} {data!r} failed by the rule, no kill: {out!r}")
            continue
        if sync:  # acknowledged: a worker has processed it
            assert data in processed, f"{data!r} succeeded but no worker processed it"
        if kind == "request":
            assert isinstance(out, chirp.Message) and out.data == b"re:" + data, out
    by_the_rule_poison = [o for _, k, _, o in results if k == "poison"]
    if topo.by_the_rule and not trouble:
        assert all(isinstance(o, chirp.RejectedError) for o in by_the_rule_poison)
    COUNTS["topologies"] += 1
    COUNTS["by the rule"] += topo.by_the_rule
    COUNTS["routers"] += len(topo.routers)
    COUNTS["actions"] += sum(len(a) for a in actions[: len(producers)])
    COUNTS["kills"] += kills[0]
    COUNTS["stalls"] += stalls[0]
    COUNTS["successes"] += sum(1 for *_, o in results if not isinstance(o, BaseException))


LOCK_TIMEOUT = 0.5


@settings(max_examples=max(10, EXAMPLES), deadline=None)
@given(
    sync=st.one_of(st.just((True, True)), st.tuples(st.booleans(), st.booleans())),
    slots=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    count=st.tuples(st.integers(0, 5), st.integers(0, 5)),
)
def test_the_seed_lock_up(
    sync: tuple[bool, bool], slots: tuple[int, int], count: tuple[int, int]
) -> None:
    """Two nodes send to each other first and receive only once their own
    sends have ended (auto_release off).  Both synchronous and both
    sending: each one's messages sit unreleased in the other's slots while
    both wait for ACKs -- the seed's lock-up.  It ends in a timeout
    within a bound, never a hang (usually errors at both senders; the side
    that times out first then reads, which may let the other side's sends
    succeed); a send that succeeded synchronously was received, and
    nothing is received twice.  With either side
    asynchronous, or one side not sending, everything gets through."""
    a, b = (
        chirp.Node(port=0, bind_v6="", disable_encryption=True, synchronous=s, max_slots=n,
                   auto_release=False, timeout=LOCK_TIMEOUT)
        for s, n in zip(sync, slots, strict=True)
    )  # fmt: skip
    nodes = (a, b)
    outcomes: list[list[tuple[bytes, BaseException | None]]] = [[], []]
    received: list[list[bytes]] = [[], []]
    sent = [threading.Event(), threading.Event()]

    def peer(i: int) -> None:
        """Send, wait for every send's end, then receive until both have
        sent and nothing more comes."""
        me, other = nodes[i], nodes[1 - i]
        datas = [b"%d-%d" % (i, j) for j in range(count[i])]
        futs = [me.send_async((LOCAL, other.port), d) for d in datas]
        for d, f in zip(datas, futs, strict=True):
            outcomes[i].append((d, f.exception(timeout=10 * LOCK_TIMEOUT + 10)))
        sent[i].set()
        while True:
            try:
                msg = me.recv(timeout=0.5)
            except chirp.ChirpTimeoutError:
                if all(e.is_set() for e in sent):
                    return
                continue
            received[i].append(bytes(msg.data))
            msg.release()

    try:
        threads = [threading.Thread(target=peer, args=(i,), daemon=True) for i in (0, 1)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for e in sent:
            assert e.wait(10 * LOCK_TIMEOUT + 15), "a sender hangs"
        took = time.monotonic() - started
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads), "a receiver hangs"
    finally:
        for node in nodes:
            node.close(linger=0)

    for i in (0, 1):
        got = received[1 - i]
        assert len(got) == len(set(got)), f"received twice: {got}"
        for data, err in outcomes[i]:
            if err is None and sync[i]:  # acknowledged (asynchronous: written)
                assert data in got, f"{data!r} succeeded but was not received"
            elif err is not None:
                assert isinstance(err, (chirp.ChirpTimeoutError, chirp.ChirpConnectionError)), err
    failed = [[e for _, e in outcomes[i] if e is not None] for i in (0, 1)]
    if all(sync) and all(count):
        # The lock-up ends with a timeout.  The first side to time out
        # goes on to receive and release: the other side's sends may then
        # succeed, when its own timers had not fired yet (delivered, too).
        assert any(isinstance(e, chirp.ChirpTimeoutError) for e in failed[0] + failed[1]), (
            f"no lock-up: {outcomes}"
        )
        assert took < 4 * LOCK_TIMEOUT + 5, f"the lock-up took {took:.1f} s to end"
        COUNTS["lock-ups shown"] += 1
        COUNTS["lock-ups with errors at both"] += bool(failed[0] and failed[1])
        return
    for i in (0, 1):
        # A synchronous side that sends, while an asynchronous peer (no
        # window: its sends need no ACK) writes more than its slots, may
        # stop reading with its slots full, the peer's ACKs of its own
        # sends behind them in the stream: answers nobody reads (the
        # guide: a producer must read its answers).  Nothing else fails.
        flooded = not sync[1 - i] and count[1 - i] > slots[i]
        if failed[i] and not (sync[i] and flooded):
            raise AssertionError(f"{sync} {slots} {count}: {outcomes}")
        COUNTS["flooded, timed out"] += bool(failed[i])
    COUNTS["without lock-up"] += not (failed[0] or failed[1])


def test_zz_report_the_counts() -> None:
    """Print what the property test went through (read it with -s)."""
    print(f"\nrule of thumb: {dict(COUNTS)}")
    assert COUNTS["topologies"] >= 1
