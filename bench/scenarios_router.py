"""Benchmark scenario 8: producer -> router -> 2 workers, 64 B.

- chirp, synchronous end to end: a synchronous producer (send_async with a
  window) -> chirp.Router -> 2 asynchronous sinks; the rate at the
  producer (each send acknowledged only once a worker took the message);
- the same producer straight to one sink (the ratio is the router's cost);
- pyzmq's forwarding device doing the same without acknowledgements:
  PUSH -> zmq.proxy (PULL -> PUSH) -> 2 PULL sinks, the rate at the sinks
  (all they received, first to last message).
"""

from __future__ import annotations

from harness import Child, Env
from report import guard, make_row

CASE = "router: producer -> 2 workers"


def _start(env: Env, spec: dict, live: list[Child]) -> list[str]:
    c = Child(env.chirp_cmd(dict(spec, deadline=env.deadline + 20)))
    live.append(c)
    return c.expect("READY", 60).split()


def _chirp(env: Env, n: int, routed: bool):
    def go() -> dict:
        live: list[Child] = []
        try:
            sinks = [int(_start(env, {"role": "chirp-sink"}, live)[0]) for _ in range(2)]
            port = sinks[0]
            if routed:
                port = int(_start(env, {"role": "chirp-router", "targets": sinks}, live)[0])
            else:
                live[1].kill()  # one sink is enough
                live.pop(1)
            sender = Child(env.chirp_cmd({"role": "chirp-send", "mode": "async", "sync": True,
                                          "size": 64, "count": n, "port": port,
                                          "deadline": env.deadline}))  # fmt: skip
            live.append(sender)
            s = sender.result(env.deadline + 30)
        finally:
            for c in live:
                c.kill()
        system = "chirp producer -> Router -> 2 workers" if routed else "chirp producer -> worker"
        note = f"{s['failed']} failed: {s['errors']}" if s["failed"] else ""
        role = {"ref": True} if routed else {"peer": True}
        return make_row(
            8, CASE, system, 64, count=n, rate=s["rate"], note=note, group="router", **role
        )

    return go


def _zmq(env: Env, n: int):
    def go() -> dict:
        live: list[Child] = []
        try:
            front, back = (int(p) for p in _start(env, {"role": "zmq-proxy"}, live))
            spec = {"role": "zmq-sink", "port": back, "deadline": env.deadline + 20}
            sinks = [Child(env.chirp_cmd(spec)) for _ in range(2)]
            live += sinks
            for c in sinks:
                c.expect("READY", 60)
            sender = Child(env.chirp_cmd({"role": "zmq-push", "size": 64, "count": n,
                                          "port": front, "deadline": env.deadline}))  # fmt: skip
            live.append(sender)
            sender.result(env.deadline + 30)
            res = [c.result(env.deadline + 30) for c in sinks]
        finally:
            for c in live:
                c.kill()
        got = sum(r["received"] for r in res)
        t0 = min(r["t_first"] for r in res if r["received"])
        t1 = max(r["t_last"] for r in res if r["received"])
        note = f"received {got} of {n + 1}" if got < n + 1 else ""
        rate = got / (t1 - t0) if t1 > t0 else 0.0
        return make_row(8, CASE, "pyzmq PUSH -> zmq.proxy -> 2 PULL", 64, count=n, rate=rate,
                        note=note, group="router", peer=True)  # fmt: skip

    return go


def scenario8(env: Env) -> list[dict]:
    """The router's cost, and pyzmq's forwarding device beside it."""
    rows: list[dict] = []
    n = env.n(100_000, 10_000)
    guard(rows, 8, CASE, "chirp producer -> Router -> 2 workers", 64, _chirp(env, n, True))
    guard(rows, 8, CASE, "chirp producer -> worker", 64, _chirp(env, n, False))
    guard(rows, 8, CASE, "pyzmq PUSH -> zmq.proxy -> 2 PULL", 64, _zmq(env, n),
          skip=env.zmq_why)  # fmt: skip
    return rows
