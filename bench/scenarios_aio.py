"""Benchmark scenario 7: asyncio and handlers.

- asyncio 64 B stream: chirp ``asend`` (the oldest of a window awaited) into
  ``async for``, beside zmq.asyncio PUSH/PULL (``await send``/``await
  recv``) and chirp's own blocking stream (send_async/recv), whose ratio
  is asyncio over blocking; for reading also: every asend awaited, and
  the stream on uvloop when it is installed.
- asyncio request/reply, one outstanding: ``await node.arequest`` against
  the blocking echo of scenario 3, beside zmq.asyncio REQ against its REP.
- handlers: a requester with 64 requests outstanding against serve() on 4
  worker threads, aserve() with 4 tasks, and the blocking echo loop (the
  reference of the ratio).
"""

from __future__ import annotations

import importlib.util

from harness import Env, run_stream
from report import guard, stream_row

CASE_STREAM = "asyncio stream"
CASE_RR = "asyncio request/reply"
CASE_SERVE = "handlers: request/reply"


def _stream(env: Env, system: str, recv: dict, send: dict, n: int, **row: object):
    dl = env.deadline

    def go():
        base = {"count": n, "deadline": dl, "sync": False}
        s, r = run_stream(
            env,
            env.chirp_cmd(dict(base, **recv)),
            dict(base, size=64, **send),
            env.chirp_cmd,
            dl + 30,
        )
        return stream_row(7, CASE_STREAM, system, 64, n, s, r, group="stream", **row)

    return go


def _sender_rate(env: Env, case: str, system: str, server: dict, client: dict, n: int, **row):
    dl = env.deadline

    def go():
        s, _ = run_stream(
            env,
            env.chirp_cmd(dict(server, deadline=dl + 20)),
            dict(client, size=64, count=n, deadline=dl),
            env.chirp_cmd,
            dl + 30,
        )
        return stream_row(7, case, system, 64, n, s, None, at="send", **row)

    return go


def scenario7(env: Env) -> list[dict]:
    """asyncio streams and round trips beside zmq.asyncio; handlers beside
    the blocking echo."""
    rows: list[dict] = []
    n = env.n(200_000, 20_000)
    ref = "chirp asend / async for"
    has_uvloop = importlib.util.find_spec("uvloop") is not None

    guard(rows, 7, CASE_STREAM, ref, 64, _stream(
        env, ref, {"role": "chirp-arecv"}, {"role": "chirp-asend"}, n, ref=True))  # fmt: skip
    guard(rows, 7, CASE_STREAM, "zmq.asyncio PUSH/PULL", 64, _stream(
        env, "zmq.asyncio PUSH/PULL", {"role": "zmq-apull"}, {"role": "zmq-apush"}, n,
        peer=True), skip=env.zmq_why)  # fmt: skip
    system = "chirp blocking send_async/recv"
    guard(rows, 7, CASE_STREAM, system, 64, _stream(
        env, system, {"role": "chirp-recv"}, {"role": "chirp-send", "mode": "async"}, n,
        peer=True))  # fmt: skip
    system = "chirp every asend awaited"
    n_each = env.n(50_000, 5000)
    guard(rows, 7, CASE_STREAM, system, 64, _stream(
        env, system, {"role": "chirp-arecv"}, {"role": "chirp-asend", "mode": "each"},
        n_each))  # fmt: skip
    system = "chirp asend / async for, uvloop"
    guard(rows, 7, CASE_STREAM, system, 64, _stream(
        env, system, {"role": "chirp-arecv", "loop": "uvloop"},
        {"role": "chirp-asend", "loop": "uvloop"}, n),
        skip="" if has_uvloop else "uvloop not installed")  # fmt: skip

    n_rr = env.n(10_000, 1000)
    system = "chirp arequest"
    guard(rows, 7, CASE_RR, system, 64, _sender_rate(
        env, CASE_RR, system, {"role": "chirp-echo"}, {"role": "chirp-arequest"}, n_rr,
        ref=True, group="rr"))  # fmt: skip
    system = "zmq.asyncio REQ/REP"
    guard(rows, 7, CASE_RR, system, 64, _sender_rate(
        env, CASE_RR, system, {"role": "zmq-rep"}, {"role": "zmq-areq"}, n_rr,
        peer=True, group="rr"), skip=env.zmq_why)  # fmt: skip

    n_serve = env.n(50_000, 5000)
    client = {"role": "chirp-request-pipelined", "window": 64}
    system = "chirp serve(), 4 workers"
    guard(rows, 7, CASE_SERVE, system, 64, _sender_rate(
        env, CASE_SERVE, system, {"role": "chirp-serve", "workers": 4}, client, n_serve,
        ref=True, group="serve"))  # fmt: skip
    system = "chirp aserve(), 4 tasks"
    guard(rows, 7, CASE_SERVE, system, 64, _sender_rate(
        env, CASE_SERVE, system, {"role": "chirp-serve", "workers": 4, "aserve": True},
        client, n_serve, group="serve"))  # fmt: skip
    system = "chirp blocking echo"
    guard(rows, 7, CASE_SERVE, system, 64, _sender_rate(
        env, CASE_SERVE, system, {"role": "chirp-echo"}, client, n_serve,
        peer=True, group="serve"))  # fmt: skip
    return rows
