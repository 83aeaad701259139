"""spin_us: waiting threads and the loop thread poll briefly before they
sleep.  The option changes timing only, never behaviour, and the polling
stops once the node is idle."""

import time

import pytest
from support.nodes import addr


@pytest.mark.parametrize("spin_us", [0, 50, 5000])
@pytest.mark.parametrize("synchronous", [False, True])
def test_same_behaviour_with_and_without_spinning(node_factory, spin_us, synchronous):
    """Blocking sends, requests with replies, receive timeouts and Futures
    work the same whatever spin_us is."""
    with (
        node_factory(spin_us=spin_us, synchronous=synchronous) as a,
        node_factory(spin_us=spin_us, synchronous=False) as b,
    ):
        for i in range(20):
            fut = a.request_async(addr(b), b"q%d" % i, timeout=10.0)
            msg = b.recv(timeout=10.0)
            assert msg.data == b"q%d" % i
            b.reply(msg, b"r%d" % i)
            assert fut.result(timeout=10.0).data == b"r%d" % i
        b.send(addr(a), b"blocking")
        assert a.recv(timeout=10.0).data == b"blocking"
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            a.recv(timeout=0.05)
        assert time.monotonic() - t0 >= 0.05


def _cpu_while_idle(node_factory, seconds: float, **opts) -> float:
    with (
        node_factory(synchronous=False, **opts) as a,
        node_factory(synchronous=False, **opts) as b,
    ):
        for _ in range(300):
            a.send(addr(b), b"x")
            b.recv(timeout=10.0)
        fut = a.send_async(addr(b), b"y")  # a completion outstanding, then none
        b.recv(timeout=10.0)
        fut.result(timeout=10.0)
        t0 = time.process_time()
        time.sleep(seconds)
        return time.process_time() - t0


def test_an_idle_node_stops_spinning(node_factory):
    """After traffic stops, no thread keeps polling: two nodes (two loop
    threads, two pump threads) use a tiny fraction of one CPU while idle,
    even with the longest spin allowed (0.1 s)."""
    used = _cpu_while_idle(node_factory, 1.0, spin_us=100_000)
    assert used < 0.25, f"idle nodes used {used:.3f} s of CPU in 1 s"
