"""chirp.Router: a synchronous middle node that forwards each message to
one worker, releases it only once the worker took it, passes replies back
before that, tries the next worker when one fails, and rejects upstream
when none takes the message (or a worker rejects it)."""

from __future__ import annotations

import threading
import time

import pytest
from support.net import LOCAL, free_port
from support.nodes import addr
from support.payloads import number_of, numbered
from support.waits import wait_until

import chirp


class Running:
    """A router running on a thread of its own while the test goes on."""

    def __init__(self, router: chirp.Router) -> None:
        self.router = router
        self.thread = threading.Thread(target=router.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.router.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


def router_node(node_factory, **kw):
    return node_factory(synchronous=True, auto_release=False, **kw)


def worker(node_factory, handler):
    """An asynchronous worker answering with handler(msg) (serve)."""
    w = node_factory(synchronous=False)
    t = threading.Thread(target=w.serve, args=(handler, 2), daemon=True)
    t.start()
    return w


def test_sends_go_round_robin_and_succeed_only_when_a_worker_took_them(node_factory):
    got = {1: [], 2: []}
    w1 = worker(node_factory, lambda m: got[1].append(number_of(m.data)))
    w2 = worker(node_factory, lambda m: got[2].append(number_of(m.data)))
    r = Running(chirp.Router(router_node(node_factory), [addr(w1), addr(w2)]))
    producer = node_factory(synchronous=True)
    for i in range(40):
        producer.send(addr(r.router.node), numbered(i))  # acknowledged: a worker has it
    r.stop()
    assert sorted(got[1] + got[2]) == list(range(40))
    assert len(got[1]) == len(got[2]) == 20
    assert r.router.counts["forwarded"] == 40


def test_a_reply_finds_its_way_back(node_factory):
    w = worker(node_factory, lambda m: b"answer to " + m.data)
    r = Running(chirp.Router(router_node(node_factory), [addr(w)]))
    producer = node_factory(synchronous=True)
    for i in range(10):
        ans = producer.request(addr(r.router.node), b"q%d" % i, timeout=10)
        assert ans.data == b"answer to q%d" % i
    r.stop()
    assert r.router.counts["replies"] == 10


def test_a_rejection_reaches_the_producer_through_two_routers(node_factory):
    def handler(msg):
        if msg.data == b"poison":
            raise ValueError("cannot digest this")
        return b"ok"

    w = worker(node_factory, handler)
    inner = Running(chirp.Router(router_node(node_factory), [addr(w)]))
    outer = Running(chirp.Router(router_node(node_factory), [addr(inner.router.node)]))
    producer = node_factory(synchronous=True)
    assert producer.request(addr(outer.router.node), b"food", timeout=10).data == b"ok"
    with pytest.raises(chirp.RejectedError) as ei:
        producer.send(addr(outer.router.node), b"poison")
    assert ei.value.reason == "ValueError: cannot digest this"
    assert ei.value.address == f"{LOCAL}:{outer.router.node.port}"
    assert producer.request(addr(outer.router.node), b"more", timeout=10).data == b"ok"
    outer.stop()
    inner.stop()


def test_a_dead_target_is_skipped_and_no_target_at_all_is_an_error(node_factory):
    got = []
    w = worker(node_factory, lambda m: got.append(m.data))
    dead = (LOCAL, free_port())
    r = Running(chirp.Router(router_node(node_factory, timeout=2.0), [dead, addr(w)]))
    producer = node_factory(synchronous=True, timeout=10.0)
    for i in range(4):
        producer.send(addr(r.router.node), b"m%d" % i)
    wait_until(lambda: len(got) == 4, 5, "4 messages at the live worker")
    assert r.router.counts["retried"] >= 1
    r.stop()
    nobody = Running(chirp.Router(router_node(node_factory, timeout=2.0), [dead]))
    with pytest.raises(chirp.RejectedError) as ei:
        producer.send(addr(nobody.router.node), b"lost?")
    assert f"no target took the message; the last, {LOCAL}:{dead[1]}:" in ei.value.reason
    nobody.stop()


def test_a_policy_by_header(node_factory):
    got = {"a": [], "b": []}
    wa = worker(node_factory, lambda m: got["a"].append(m.header))
    wb = worker(node_factory, lambda m: got["b"].append(m.header))
    targets = {b"a": addr(wa), b"b": addr(wb)}
    r = Running(
        chirp.Router(router_node(node_factory), list(targets.values()), lambda m: targets[m.header])
    )
    producer = node_factory(synchronous=True)
    for h in (b"a", b"b", b"b", b"a", b"b"):
        producer.send(addr(r.router.node), b"x", header=h)
    with pytest.raises(chirp.RejectedError, match="the router's policy failed: KeyError"):
        producer.send(addr(r.router.node), b"x", header=b"c")
    r.stop()
    assert got == {"a": [b"a", b"a"], "b": [b"b", b"b", b"b"]}


def test_fewest_inflight_avoids_a_slow_worker(node_factory):
    got = {"slow": 0, "fast": 0}

    def slow(m):
        got["slow"] += 1
        time.sleep(0.2)

    def fast(m):
        got["fast"] += 1

    ws, wf = worker(node_factory, slow), worker(node_factory, fast)
    r = Running(chirp.Router(router_node(node_factory), [addr(ws), addr(wf)], "fewest_inflight"))
    # A window of 16 paces the producer by the router's acknowledgements:
    # with all 40 at once the router forwards them before either worker
    # has acknowledged one, and fewest-in-flight is a tie each time.
    producer = node_factory(synchronous=True, max_inflight=16)
    futs = [producer.send_async(addr(r.router.node), b"%d" % i) for i in range(40)]
    for f in futs:
        f.result(timeout=20)
    r.stop()
    assert got["slow"] + got["fast"] == 40 and got["fast"] > got["slow"], got


def test_bad_setups_are_refused_before_anything_runs(node_factory):
    w = node_factory(synchronous=False)
    with pytest.raises(ValueError, match="synchronous=True and auto_release=False"):
        chirp.Router(node_factory(synchronous=False, auto_release=False), [addr(w)])
    with pytest.raises(ValueError, match="synchronous=True and auto_release=False"):
        chirp.Router(node_factory(synchronous=True), [addr(w)])
    node = router_node(node_factory)
    with pytest.raises(ValueError, match="at least one target"):
        chirp.Router(node, [])
    with pytest.raises(TypeError, match="address must be a"):
        chirp.Router(node, ["127.0.0.1:2998"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="policy must be one of"):
        chirp.Router(node, [addr(w)], "random")


def test_a_router_of_a_closed_node_returns_and_a_refused_one_leaves_nothing(node_factory):
    node = router_node(node_factory)
    router = chirp.Router(node, [(LOCAL, free_port())])
    node.close()
    router.run()  # returns at once: the node is closed
    router.close()
    router.close()  # again: nothing
    import gc
    import sys

    seen = []
    old, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        with pytest.raises(ValueError):
            chirp.Router(node_factory(synchronous=False), [(LOCAL, 1)])
        gc.collect()
    finally:
        sys.unraisablehook = old
    assert not seen, [str(u.exc_value) for u in seen]  # e.g. a failing __del__


def test_an_answer_counts_as_done_even_if_the_ack_never_comes(node_factory):
    """A worker that answers and then goes away before it releases the
    message: the producer has its answer, and the router releases the
    original instead of rejecting it."""
    w = node_factory(synchronous=False, auto_release=False)
    r = Running(chirp.Router(router_node(node_factory, timeout=2.0), [addr(w)]))
    producer = node_factory(synchronous=True, timeout=5.0)

    def answer_then_vanish():
        msg = w.recv(timeout=10)
        w.reply(msg, b"done")
        time.sleep(0.2)  # the answer is on its way; the ACK will never be
        w.close(linger=0)

    t = threading.Thread(target=answer_then_vanish, daemon=True)
    t.start()
    assert producer.request(addr(r.router.node), b"job", timeout=10).data == b"done"
    t.join(10)
    wait_until(lambda: r.router.counts["forwarded"] == 1, 10, "the forward counted done")
    r.stop()
    assert r.router.counts["rejected"] == 0, r.router.counts
