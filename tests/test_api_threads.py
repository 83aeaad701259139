"""send / recv / release / request / close from several threads at once."""

import queue
import threading
import time
from collections import defaultdict

import pytest
from support.nodes import addr, assert_no_message
from support.waits import run_in_thread

import chirp


def _join_all(threads, timeout):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(timeout=max(0.01, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads still running: {alive}"


def _receiver_loop(node, expected, stop, out, errors, lock, release=True):
    while not stop.is_set():
        with lock:
            if len(out) >= expected:
                return
        try:
            msg = node.recv(timeout=0.3)
        except TimeoutError:
            continue
        except Exception as exc:
            errors.append(exc)
            return
        with lock:
            out.append((bytes(msg.data), msg.serial, msg.remote_identity))
        if release:
            msg.release()


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_many_senders_many_receivers(node_factory, sync):
    senders, per_sender, receivers = 4, 150, 3
    rx = node_factory(synchronous=False, max_slots=8, auto_release=False)
    tx = node_factory(synchronous=sync, timeout=20.0)
    total = senders * per_sender
    out, errors, lock, stop = [], [], threading.Lock(), threading.Event()
    send_errors = []
    # one connection up front: this test is about threads, not connect races
    fut = tx.send_async(addr(rx), b"warm-up")
    rx.recv(timeout=10).release()
    assert fut.result(timeout=10) is None

    def send_loop(t):
        try:
            for i in range(per_sender):
                tx.send(addr(rx), b"t%d:%05d" % (t, i), header=b"%d" % t)
        except Exception as exc:
            send_errors.append(exc)

    rthreads = [
        threading.Thread(
            target=_receiver_loop,
            name=f"recv{r}",
            args=(rx, total, stop, out, errors, lock),
            daemon=True,
        )
        for r in range(receivers)
    ]
    sthreads = [
        threading.Thread(target=send_loop, args=(t,), name=f"send{t}", daemon=True)
        for t in range(senders)
    ]
    for t in rthreads + sthreads:
        t.start()
    try:
        _join_all(sthreads, 60)
        deadline = time.monotonic() + 30
        while len(out) < total and time.monotonic() < deadline and not errors:
            time.sleep(0.02)
    finally:
        stop.set()
        _join_all(rthreads, 10)
    assert not send_errors, send_errors[:3]
    assert not errors, errors[:3]
    datas = [d for d, _, _ in out]
    assert len(datas) == total
    assert set(datas) == {b"t%d:%05d" % (t, i) for t in range(senders) for i in range(per_sender)}
    assert {r for _, _, r in out} == {tx.identity}
    serials = [s for _, s, _ in out]
    assert len(set(serials)) == total, "serials unique on one connection"
    if sync:
        # each thread waits for the ACK before its next send, so its
        # messages were written in order: their serials increase
        by_thread = defaultdict(list)
        for d, s, _ in out:
            t, i = d[1:].split(b":")
            by_thread[t].append((int(i), s))
        for t, items in by_thread.items():
            items.sort()
            ser = [s for _, s in items]
            assert all(a < b for a, b in zip(ser, ser[1:], strict=False)), t


def test_threads_sending_to_different_nodes_never_swap_addresses(node_factory):
    """Four threads, each streaming to a node of its own through the one
    sending node, with send_async and post in turns: every message reaches
    the node its thread addressed (the sender remembers the last address
    it saw; threads must not get each other's)."""
    tx = node_factory(synchronous=False)
    rxs = [node_factory(synchronous=False) for _ in range(4)]
    per_thread = 3000
    errors: list = []

    def stream(t: int) -> None:
        to = addr(rxs[t])  # one tuple, passed again and again
        try:
            for i in range(per_thread):
                if i % 2:
                    tx.post(to, b"%d:%d" % (t, i))
                else:
                    tx.send_async(to, b"%d:%d" % (t, i))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=stream, args=(t,), daemon=True) for t in range(4)]
    for th in threads:
        th.start()
    _join_all(threads, 60)
    assert not errors, errors[:3]
    for t, rx in enumerate(rxs):
        got: list[bytes] = []
        while len(got) < per_thread:
            got += rx.recv_many_data(1000, timeout=10)
        assert {d.split(b":")[0] for d in got} == {b"%d" % t}
        assert sorted(int(d.split(b":")[1]) for d in got) == list(range(per_thread))


def test_send_async_from_many_threads(node_factory):
    threads_n, per = 8, 100
    rx = node_factory(synchronous=False)
    tx = node_factory(synchronous=False)
    futs, lock = [], threading.Lock()

    def spray(t):
        mine = [tx.send_async(addr(rx), b"%d-%d" % (t, i)) for i in range(per)]
        with lock:
            futs.extend(mine)

    ths = [threading.Thread(target=spray, args=(t,), daemon=True) for t in range(threads_n)]
    for t in ths:
        t.start()
    got = []
    deadline = time.monotonic() + 30
    while len(got) < threads_n * per:
        assert time.monotonic() < deadline, len(got)
        try:
            m = rx.recv(timeout=2.0)
        except TimeoutError:
            continue
        got.append(bytes(m.data))
        m.release()
    _join_all(ths, 10)
    for f in futs:
        assert f.result(timeout=10) is None
    assert len(got) == len(set(got)) == threads_n * per
    # per thread, send_async calls from one thread keep their order
    for t in range(threads_n):
        mine = [g for g in got if g.startswith(b"%d-" % t)]
        assert mine == [b"%d-%d" % (t, i) for i in range(per)]


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_concurrent_requests_are_matched(node_factory, sync):
    server = node_factory(synchronous=sync, timeout=10.0)
    client = node_factory(synchronous=sync, timeout=10.0)
    stop = threading.Event()
    serve_errors = []

    def serve():
        while not stop.is_set():
            try:
                m = server.recv(timeout=0.2)
            except TimeoutError:
                continue
            except chirp.ClosedError:
                return
            try:
                server.reply(m, m.data[::-1], header=m.header)
            except Exception as exc:
                serve_errors.append(exc)
            finally:
                m.release()

    servers = [threading.Thread(target=serve, daemon=True) for _ in range(3)]
    for t in servers:
        t.start()
    results, errors = [], []

    def ask(t):
        try:
            for i in range(40):
                q = b"question %d from %d" % (i, t)
                ans = client.request(addr(server), q, header=b"%d" % t, timeout=15.0)
                results.append((q, ans.data, ans.header, t))
        except Exception as exc:
            errors.append(exc)

    askers = [threading.Thread(target=ask, args=(t,), daemon=True) for t in range(5)]
    try:
        for t in askers:
            t.start()
        _join_all(askers, 60)
    finally:
        stop.set()
        _join_all(servers, 10)
    assert not errors, errors[:3]
    assert not serve_errors, serve_errors[:3]
    assert len(results) == 5 * 40
    for q, data, hdr, t in results:
        assert data == q[::-1]
        assert hdr == b"%d" % t


def test_release_from_another_thread(node_factory):
    rx = node_factory(synchronous=False, max_slots=2, auto_release=False)
    tx = node_factory(synchronous=True, timeout=10.0)
    n = 100
    handoff = queue.Queue()
    released = []

    def releaser():
        while len(released) < n:
            try:
                m = handoff.get(timeout=10)
            except queue.Empty:
                return
            m.release()
            released.append(m)

    def receiver():
        for _ in range(n):
            handoff.put(rx.recv(timeout=10.0))

    def sender():
        for i in range(n):
            tx.send(addr(rx), b"%d" % i)

    ts = [run_in_thread(f) for f in (releaser, receiver, sender)]
    for t, box in ts:
        t.join(timeout=60)
        assert not t.is_alive()
        assert "error" not in box, box.get("error")
    assert [m.data for m in released] == [b"%d" % i for i in range(n)]


def test_double_release_from_two_threads(node_factory):
    """Releasing the same message from several threads at once releases it
    once: the next message then holds the only slot."""
    rx = node_factory(synchronous=False, max_slots=1, auto_release=False)
    tx = node_factory(synchronous=False)
    for i in range(3):
        tx.send_async(addr(rx), b"%d" % i).result(timeout=10)

    def release_concurrently(m):
        barrier = threading.Barrier(4)

        def rel():
            barrier.wait(timeout=5)
            m.release()

        ts = [threading.Thread(target=rel, daemon=True) for _ in range(4)]
        for t in ts:
            t.start()
        _join_all(ts, 10)

    m0 = rx.recv(timeout=5.0)
    assert m0.data == b"0"
    release_concurrently(m0)
    m1 = rx.recv(timeout=5.0)
    assert m1.data == b"1"
    assert_no_message(rx, 0.7)  # m1 holds the only slot
    release_concurrently(m1)
    last = rx.recv(timeout=5.0)
    assert last.data == b"2"
    last.release()


def test_close_while_threads_busy(node_factory):
    """close() while other threads send and receive: every thread ends
    promptly, with success or a ChirpError, and later calls raise
    ClosedError."""
    a = node_factory(synchronous=True, timeout=10.0)
    b = node_factory(synchronous=False)
    stop = threading.Event()
    outcomes = []

    def sender():
        try:
            while not stop.is_set():
                a.send(addr(b), b"x" * 1000)
            outcomes.append("stopped")
        except chirp.ChirpError as exc:
            outcomes.append(exc)
        except Exception as exc:
            outcomes.append(("unexpected", exc))

    def receiver(node):
        try:
            while not stop.is_set():
                try:
                    node.recv(timeout=0.2).release()
                except TimeoutError:
                    pass
            outcomes.append("stopped")
        except chirp.ChirpError as exc:
            outcomes.append(exc)
        except Exception as exc:
            outcomes.append(("unexpected", exc))

    ths = [threading.Thread(target=sender, daemon=True) for _ in range(3)]
    ths += [threading.Thread(target=receiver, args=(a,), daemon=True) for _ in range(2)]
    ths += [threading.Thread(target=receiver, args=(b,), daemon=True) for _ in range(2)]
    for t in ths:
        t.start()
    time.sleep(0.5)  # traffic under way
    t0 = time.monotonic()
    a.close()
    assert time.monotonic() - t0 < 10.0
    # threads using node a must end on their own, before we set stop
    a_threads = ths[:5]
    _join_all(a_threads, 10)
    stop.set()
    _join_all(ths, 10)
    bad = [o for o in outcomes if isinstance(o, tuple)]
    assert not bad, bad
    with pytest.raises(chirp.ClosedError):
        a.send(addr(b), b"late")
    # node b is unaffected
    c = node_factory(synchronous=False)
    c.send(addr(b), b"still here")
    deadline = time.monotonic() + 10
    while True:  # skip what a's senders left in b's queue
        assert time.monotonic() < deadline
        m = b.recv(timeout=5.0)
        m.release()
        if m.data == b"still here":
            break


def test_close_from_many_threads(node_factory):
    node = node_factory()
    barrier = threading.Barrier(6)
    errs = []

    def close():
        try:
            barrier.wait(timeout=5)
            node.close()
        except Exception as exc:
            errs.append(exc)

    ts = [threading.Thread(target=close, daemon=True) for _ in range(6)]
    for t in ts:
        t.start()
    _join_all(ts, 10)
    assert not errs, errs
