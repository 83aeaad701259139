"""The seed story: synchronous peers with bounded slots can deadlock; the
way out is asymmetry, and timeouts must reach the producer.

1. Two synchronous nodes, max_slots=1, auto_release=False; each first sends
   to the other and only then receives: each message sits in the other's
   only slot, unreleased, while both wait for an ACK.  With a short timeout
   it ends in errors on both sides, in bounded time -- not a hang.
2. producer (sync) -> router (sync, auto_release=False: forwards with a
   blocking send, then releases the original) -> consumer (async, a child
   process).  Everything is delivered.  When the consumer is stopped
   (SIGSTOP) or killed (SIGKILL), the router's forward fails, the router
   does not release (so sends no ACK), and the producer's sends fail with
   a timeout: the timeout reaches the producer.
"""

import collections
import threading
import time

import pytest
from support.net import LOCAL
from support.waits import wait_futures

from .kit import SendLedger

pytestmark = pytest.mark.hang_limit(120)


def _addr(node):
    return (LOCAL, node.port)


def _send_then_recv(nodes, timeout):
    a, b = nodes
    barrier = threading.Barrier(2)
    out = {}

    def peer(me, other, key):
        barrier.wait(timeout=5)
        t0 = time.monotonic()
        try:
            me.send(_addr(other), b"from " + key.encode())
            out[key] = "ok"
        except Exception as e:
            out[key] = e
        out[key + ".t"] = time.monotonic() - t0
        try:
            m = me.recv(timeout=2.0)
            out[key + ".recv"] = m.data
            m.release()
        except TimeoutError:
            out[key + ".recv"] = None

    threads = [
        threading.Thread(target=peer, args=(a, b, "a"), daemon=True),
        threading.Thread(target=peer, args=(b, a, "b"), daemon=True),
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3 * timeout + 8)
    assert not any(t.is_alive() for t in threads), "the peers hang"
    return out, time.monotonic() - t0


def test_symmetric_synchronous_peers_deadlock_into_timeouts(node_factory):
    import chirp

    timeout = 0.5
    nodes = [
        node_factory(synchronous=True, auto_release=False, max_slots=1, timeout=timeout)
        for _ in range(2)
    ]
    out, took = _send_then_recv(nodes, timeout)
    print(
        f"\n[deadlock] sync/sync: a={out['a']!r} after {out['a.t']:.2f}s, "
        f"b={out['b']!r} after {out['b.t']:.2f}s; received a={out['a.recv']!r} "
        f"b={out['b.recv']!r}; all over in {took:.2f}s"
    )
    # The deadlock is broken by a send timeout, in bounded time.  Then either
    # side may see: its own timeout; the close of a shared connection by the
    # peer's timeout (ChirpConnectionError, at the same moment); or success,
    # when the peer, freed by its own timeout, released the message before
    # this side's timer fired -- success only with delivery.
    for k, other in (("a", "b"), ("b", "a")):
        if out[k] == "ok":
            assert out[other + ".recv"] == b"from " + k.encode()
        else:
            assert isinstance(out[k], (chirp.ChirpTimeoutError, chirp.ChirpConnectionError)), (
                f"{k}: {out[k]!r}"
            )
        assert timeout - 0.1 <= out[k + ".t"] <= timeout + 1.5, out[k + ".t"]
    assert isinstance(out["a"], chirp.ChirpTimeoutError) or isinstance(
        out["b"], chirp.ChirpTimeoutError
    )
    # Both messages were delivered; a sender that got an error must retry
    # (at-least-once from its view): never a silent loss.
    assert out["a.recv"] == b"from b" and out["b.recv"] == b"from a"


def test_asynchronous_receivers_break_the_deadlock(node_factory):
    """The same pattern with asynchronous nodes completes: a send returns
    once written, so both get to receive."""
    nodes = [
        node_factory(synchronous=False, auto_release=False, max_slots=1, timeout=0.5)
        for _ in range(2)
    ]
    out, took = _send_then_recv(nodes, 0.5)
    assert out["a"] == "ok" and out["b"] == "ok", out
    assert out["a.recv"] == b"from b" and out["b.recv"] == b"from a"


class Router:
    """Receives (auto_release=False), forwards with a blocking synchronous
    send, and releases the original only when the forward succeeded.  On a
    failed forward it keeps the message unreleased: releasing it would ACK
    it, and the producer would believe it was delivered."""

    def __init__(self, node, target):
        self.node = node
        self.target = target
        self.forwarded = []
        self.failures = []
        self.held = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="router", daemon=True)
        self.thread.start()

    def _run(self):
        import chirp

        while not self.stop.is_set():
            try:
                msg = self.node.recv(timeout=0.1)
            except TimeoutError:
                continue
            except chirp.ClosedError:
                return
            try:
                self.node.send(self.target, msg.data)
            except chirp.ChirpError as e:
                self.failures.append((msg.data, e, time.monotonic()))
                self.held.append(msg)  # no release, so no ACK
                continue
            self.forwarded.append(msg.data)
            msg.release()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("stop_how", ["sigstop", "sigkill"])
def test_router_passes_timeouts_to_the_producer(node_factory, make_consumer, stop_how):
    import chirp

    router_timeout, producer_timeout = 0.5, 1.5
    consumer = make_consumer(f"routed-{stop_how}")
    router = node_factory(synchronous=True, auto_release=False, max_slots=1, timeout=router_timeout)
    producer = node_factory(synchronous=True, timeout=producer_timeout)
    r = Router(router, (LOCAL, consumer.port))
    try:
        # 1. The happy path: everything arrives, every send succeeds.
        ledger = SendLedger(producer, _addr(router), window=8)
        for _ in range(60):
            ledger.send_one()
        futs = list(ledger.futures.values())
        assert not wait_futures(futs, timeout=3 * producer_timeout + 5)
        acked, failed = ledger.split()
        assert not failed, f"{len(failed)} failed, e.g. {next(iter(failed.values()))!r}"
        assert consumer.numbers() == list(range(60)), "the consumer got every message, in order"

        # 2. The consumer stops: the forward fails, the producer times out.
        if stop_how == "sigstop":
            consumer.sigstop()
        else:
            consumer.kill()
        results, ended = [], []
        for i in range(3):
            n = 1000 + i
            t0 = time.monotonic()
            try:
                producer.send(_addr(router), b"%d" % n)
                results.append((n, "ok", time.monotonic() - t0))
            except chirp.ChirpError as e:
                results.append((n, e, time.monotonic() - t0))
            ended.append(time.monotonic())
        print(
            f"\n[router {stop_how}] producer: "
            + ", ".join(f"{n}: {type(e).__name__} after {t:.2f}s" for n, e, t in results)
        )
        print(
            f"[router {stop_how}] router forwards: "
            + ", ".join(f"{d.decode()}: {type(e).__name__}" for d, e, _ in r.failures)
        )
        for n, e, t in results:
            assert isinstance(e, chirp.ChirpTimeoutError), f"producer send {n}: {e!r}"
            assert producer_timeout - 0.1 <= t <= producer_timeout + 1.5, t
        assert len(r.failures) == 3 and len(r.held) == 3
        kinds = {type(e) for _, e, _ in r.failures}
        if stop_how == "sigstop":
            assert kinds == {chirp.ChirpTimeoutError}, kinds
        else:
            assert all(issubclass(k, chirp.ChirpError) for k in kinds), kinds
        # Each forward failed before the producer gave up on that message.
        assert [d for d, _, _ in r.failures] == [b"1000", b"1001", b"1002"]
        assert all(t_fail < t_end for (_, _, t_fail), t_end in zip(r.failures, ended, strict=True))

        # 3. The consumer is back: the chain works again.
        if stop_how == "sigstop":
            consumer.cont()
        else:
            consumer.start()
        ok = None
        for _ in range(20):
            try:
                producer.send(_addr(router), b"2000")
                ok = True
                break
            except chirp.ChirpError:
                time.sleep(0.1)
        assert ok, "the chain never recovered"
        for n in range(2001, 2011):
            producer.send(_addr(router), b"%d" % n)
        got = consumer.numbers()
        assert set(range(2001, 2011)) <= set(got)
        delivered_after_failure = sorted(set(got) & {1000, 1001, 1002})
        print(
            f"[router {stop_how}] failed sends that still reached the consumer later: "
            f"{delivered_after_failure} (allowed: the sender was told it failed)"
        )
        counts = collections.Counter(got)
        assert not [n for n, c in counts.items() if c > 1 and n < 1000], "duplicates"
    finally:
        r.close()
        for m in r.held:
            m.release()
