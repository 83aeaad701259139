"""Typical use of chirp, checked by mypy --strict (tests/test_typing.py):
every call here must type-check."""

from __future__ import annotations

import asyncio
from concurrent.futures import wait

import chirp


def blocking(peer: tuple[str, int]) -> bytes:
    with chirp.Node(port=0, synchronous=True, timeout=2.0, bind_v6="") as node:
        node.send(peer, b"data", header=b"h")
        fut: chirp.ChirpFuture[None] = node.send_async(peer, b"data")
        wait([fut, node.send_many(peer, [b"a", b"b"])])
        answer: chirp.Message = node.request(peer, b"q", timeout=1.0)
        msg = node.recv(timeout=1.0)
        node.reply(msg, msg.data)
        reply: chirp.Message = node.request_async(peer, b"q").result(timeout=2.0)
        datas: list[bytes] = node.recv_many_data(256, timeout=0.5)
        big = node.recv(timeout=1.0, copy=False)
        view: memoryview = big.view
        return answer.data + reply.data + b"".join(datas) + view.tobytes()


async def on_asyncio(peer: tuple[str, int]) -> list[chirp.Message]:
    config = chirp.Config(port=0, synchronous=False)
    async with chirp.Node(config, linger=0.5) as node:
        await node.asend(peer, b"x")
        answer = await node.arequest(peer, b"q", timeout=1.0)
        await node.areply(answer, b"thanks")
        batch = await node.arecv_many(10, timeout=0.5)
        async for msg in node:
            batch.append(msg)
            break
        return batch


def handler(msg: chirp.Message) -> bytes:
    return msg.data.upper()


def serving() -> None:
    with chirp.Node(port=0) as node:
        node.serve(handler, workers=2)


if __name__ == "__main__":
    asyncio.run(on_asyncio(("127.0.0.1", 2998)))
