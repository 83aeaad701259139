"""The asyncio API over TLS across processes: this process awaits arequest,
asend, arecv, arecv_many, async for and areply against an echo node in
another process (scenario ``echo``, in the opposite mode) and a requesting
node in a third (this module with ``role: asker``)."""

import asyncio
import json

from support.child import Child, python
from support.payloads import number_of, numbered, pattern

import chirp
from tls.scenario import ADDRESS, emit, err_info, node

SIZES = [0, 1, 100_000, 4 * 1024 * 1024]


def record(child, kind, timeout):
    """The child's next JSON record of this kind."""
    return child.read_json(timeout, lambda r: r.get("kind") == kind, f"a {kind!r} record")


def spawn(p, scenario, **params):
    return Child(
        python("tls.scenario", scenario, json.dumps({**p, **params})),
        name=f"{scenario} scenario",
        stdin=True,
        stderr="inherit",
    )


def run(p):
    if p.get("role") == "asker":
        ask(p)
    else:
        asyncio.run(main(p))


def ask(p):
    """The requesting process: count requests to (ADDRESS, target), blocking."""
    answers, errors = [], []
    with node(p, "c", synchronous=p["synchronous"]) as c:
        for i in range(p["count"]):
            try:
                ans = c.request((ADDRESS, p["target"]), numbered(i), header=b"ask", timeout=15)
                answers.append([number_of(ans.data), bytes(ans.header).decode()])
            except chirp.ChirpError as e:
                errors.append(err_info(e))
    emit(kind="done", answers=answers, errors=errors[:5], n_errors=len(errors))


async def main(p):
    sync = p["synchronous"]
    count = p.get("count", 1000)
    out = {}
    echo = spawn(p, "echo", name="b", synchronous=not sync)
    try:
        ready = record(echo, "ready", 15)
        dest = (ADDRESS, ready["port"])
        async with node(p, "a", synchronous=sync) as a:
            # arequest: every size comes back intact from the other process
            reqs = []
            for i, size in enumerate(SIZES):
                data = pattern(size, seed=200 + i)
                ans = await a.arequest(dest, data, header=b"aio-%d" % size, timeout=15)
                reqs.append(
                    {
                        "size": size,
                        "ok": bytes(ans.data) == data and ans.header == b"aio-%d" % size,
                        "identity_ok": ans.remote_identity.hex() == ready["identity"],
                        "address": ans.address,
                    }
                )
            out["requests"] = reqs

            # asend a stream; the echoes come back through arecv_many, async for
            sent = await asyncio.gather(*[a.asend(dest, numbered(i)) for i in range(count)])
            got = [number_of(m.data) for m in await a.arecv_many(64, timeout=10)]
            async for m in a:
                got.append(number_of(m.data))
                if len(got) == count:
                    break
            out["stream"] = {
                "send_results_none": sent == [None] * count,
                "received": len(got),
                "in_order": got == list(range(count)),
            }

            # areply to requests from a third process
            asker = spawn(p, "aio", role="asker", target=a.port, count=50, synchronous=not sync)
            try:
                for _ in range(50):
                    msg = await a.arecv(timeout=15)
                    await a.areply(msg, msg.data, header=b"re:" + msg.header)
                out["asker"] = record(asker, "done", 30)
            finally:
                asker.kill()
        echo.close_stdin()
        out["peer"] = record(echo, "done", 15)
    finally:
        echo.kill()
    emit(kind="result", **out)
