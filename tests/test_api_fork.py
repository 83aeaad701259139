"""fork() with nodes open: a child never crashes or hangs because of the
nodes it inherited.  Every call on them raises ClosedError at once,
naming the process that made them; the child's exit leaves the parent's
loop threads, sockets and TLS alone; a node of the child's own works; the
parent's nodes work on.  Each scenario runs 20 times in a program of its
own (forking pytest itself would fork its threads too)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from support.child import run

ROUNDS = 20

PRELUDE = """
import json, os, sys, threading, time
import chirp
OPTS = dict(port=0, disable_encryption=True, bind_v6="")
nodes = [chirp.Node(**OPTS) for _ in range(NODES)]
peer = chirp.Node(synchronous=False, **OPTS)  # drains what it gets
addr = ("127.0.0.1", peer.port)
seen = []
def drain():
    while True:
        try:
            seen.extend(bytes(m.data) for m in peer.recv_many(64, timeout=0.2))
        except chirp.ChirpTimeoutError:
            pass
        except chirp.ClosedError:
            return
threading.Thread(target=drain, daemon=True).start()
for n in nodes:
    n.send(addr, b"before the fork")
statuses, notes = [], []
"""

EPILOGUE = """
for n in nodes:  # the parent's nodes work on
    n.send(addr, b"after")
print(json.dumps({"statuses": statuses, "notes": notes}))
"""


def _run(nodes: int, body: str, timeout: float = 120) -> dict:
    code = PRELUDE.replace("NODES", str(nodes)) + textwrap.dedent(body) + EPILOGUE
    res = run([sys.executable, "-c", code], timeout=timeout)
    assert res.returncode == 0, res.describe()
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"\n[fork] {nodes} node(s): exit statuses {out['statuses']}")
    return out


@pytest.mark.parametrize("nodes", [1, 2, 3])
@pytest.mark.parametrize("how", ["sys.exit", "os._exit", "with"])
def test_a_child_that_just_exits(nodes, how):
    """sys.exit runs the interpreter's exit (atexit, collection) in the
    child, with the inherited nodes alive; "with" leaves a with block of an
    inherited node on its way out."""
    ends = {
        "sys.exit": "sys.exit(0)",
        "os._exit": "os._exit(0)",
        "with": "with nodes[0]:\n                    sys.exit(0)",
    }
    out = _run(
        nodes,
        f"""
        for _ in range({ROUNDS}):
            pid = os.fork()
            if pid == 0:
                {ends[how]}
            statuses.append(os.waitpid(pid, 0)[1])
        """,
    )
    assert out["statuses"] == [0] * ROUNDS


@pytest.mark.parametrize("nodes", [1, 2, 3])
def test_a_child_that_uses_its_inherited_nodes_gets_closed_error_at_once(nodes):
    out = _run(
        nodes,
        f"""
        pending = nodes[0].request_async(addr, b"never answered")
        for _ in range({ROUNDS}):
            pid = os.fork()
            if pid == 0:
                bad = []
                calls = {{
                    "send": lambda n: n.send(addr, b"x"),
                    "send_async": lambda n: n.send_async(addr, b"x"),
                    "send_many": lambda n: n.send_many(addr, [b"x"]),
                    "request": lambda n: n.request(addr, b"q"),
                    "recv": lambda n: n.recv(timeout=5),
                    "recv_many": lambda n: n.recv_many(4, timeout=5),
                    "fileno": lambda n: n.fileno(),
                    "close": lambda n: n.close(),
                    "pending.result": lambda n: pending.result(timeout=5),
                }}
                for n in nodes:
                    for name, call in calls.items():
                        t0 = time.monotonic()
                        try:
                            call(n)
                            bad.append(name + ": no error")
                        except chirp.ClosedError as e:
                            if time.monotonic() - t0 > 1.0:
                                bad.append(name + ": slow")
                            if f"created in process {{os.getppid()}}" not in str(e):
                                bad.append(name + ": " + str(e))
                        except BaseException as e:
                            bad.append(name + ": " + repr(e))
                    if not n.closed:
                        bad.append("closed is False")
                os._exit(0 if not bad else (print(bad, file=sys.stderr) or 3))
            statuses.append(os.waitpid(pid, 0)[1])
        notes.append(str(pending.done()))
        """,
    )
    assert out["statuses"] == [0] * ROUNDS
    assert out["notes"] == ["False"]  # the parent's request is still pending


@pytest.mark.parametrize("nodes", [1, 3])
def test_a_child_makes_its_own_node_and_talks_to_the_parent(nodes):
    out = _run(
        nodes,
        f"""
        for i in range({ROUNDS}):
            pid = os.fork()
            if pid == 0:
                with chirp.Node(**OPTS) as mine:
                    mine.send(addr, b"from child %d" % i)
                    answer = None
                os._exit(0)
            statuses.append(os.waitpid(pid, 0)[1])
        deadline = time.monotonic() + 10
        want = {{b"from child %d" % i for i in range({ROUNDS})}}
        while not want <= set(seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        notes.append(len(want & set(seen)))
        """,
    )
    assert out["statuses"] == [0] * ROUNDS
    assert out["notes"] == [ROUNDS]


def test_a_child_that_drops_views_of_taken_buffers():
    """Views of buffers received with copy=False, inherited by a child: it
    reads them, drops them (freeing the buffers in the child) and exits;
    the parent's views are untouched."""
    out = _run(
        1,
        f"""
        big = bytes(range(256)) * 1024
        to = ("127.0.0.1", nodes[0].port)
        views = []
        for i in range(4):
            peer.send(to, big + bytes([i]))
            views.append(nodes[0].recv(timeout=10, copy=False).view)
        for _ in range({ROUNDS}):
            pid = os.fork()
            if pid == 0:
                ok = [bytes(v) == big + bytes([i]) for i, v in enumerate(views)]
                views.clear()
                import gc
                gc.collect()
                sys.exit(0 if all(ok) else 3)
            statuses.append(os.waitpid(pid, 0)[1])
        notes.append([bytes(v) == big + bytes([i]) for i, v in enumerate(views)])
        """,
    )
    assert out["statuses"] == [0] * ROUNDS
    assert out["notes"] == [[True] * 4]


def test_a_multiprocessing_fork_pool_fails_promptly():
    out = _run(
        2,
        f"""
        import multiprocessing
        def work(i):
            return nodes[i % len(nodes)].send(addr, b"from the pool")
        ctx = multiprocessing.get_context("fork")
        for _ in range({ROUNDS}):
            t0 = time.monotonic()
            with ctx.Pool(2) as pool:
                try:
                    pool.map(work, range(4), chunksize=1)
                    notes.append("no error")
                except chirp.ClosedError as e:
                    ok = "created in process" in str(e) and time.monotonic() - t0 < 10
                    notes.append("ClosedError" if ok else str(e))
        """,
        timeout=300,
    )
    assert out["notes"] == ["ClosedError"] * ROUNDS
