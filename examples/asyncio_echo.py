"""asyncio with chirp: an echo service and a client in one program.

    python examples/asyncio_echo.py

The service answers every message with its data upper-cased, on four
concurrent handler tasks (aserve); the client sends ten requests at once
with arequest, then a stream with asend while it reads the answers with
async for; a request cancelled by a timeout is withdrawn (its late reply
is dropped, never received).  As the README's rule says, the service (a
consumer) runs asynchronous and the client (a producer) synchronous: every
asend ends only when the service has released the message."""

import asyncio

import chirp

OPTS = dict(port=0, bind_v6="", disable_encryption=True, timeout=5.0)


async def upper(msg: chirp.Message) -> bytes:
    """The handler: its return value is the reply, sent before the message
    is released."""
    await asyncio.sleep(0.01)  # some work that awaits
    return bytes(msg.data).upper()


async def main() -> None:
    async with (
        chirp.Node(synchronous=False, **OPTS) as service,
        chirp.Node(synchronous=True, **OPTS) as client,
    ):
        serving = asyncio.create_task(service.aserve(upper, concurrency=4))
        addr = ("127.0.0.1", service.port)

        # requests, ten at once: each awaits its own reply
        answers = await asyncio.gather(*(client.arequest(addr, b"hello %d" % i) for i in range(10)))
        print([bytes(a.data) for a in answers][:3], "...")

        # a stream: its answers arrive as messages, read meanwhile
        async def read(n: int) -> set[bytes]:
            got = set()
            async for msg in client:
                got.add(bytes(msg.data))
                if len(got) == n:
                    break
            return got

        reader = asyncio.create_task(read(1000))
        # asend queues at once; await its Futures (here all, at the end)
        await asyncio.gather(*(client.asend(addr, b"message %d" % i) for i in range(1000)))
        answers = await reader
        print(f"1000 sent and acknowledged, {len(answers)} answers read, e.g. {min(answers)!r}")

        # a request given up on is withdrawn
        try:
            await asyncio.wait_for(client.arequest(addr, b"too slow?"), 0.001)
        except asyncio.TimeoutError:
            print("timed out: its reply, if it comes, is dropped")

        service.stop()
        await serving


if __name__ == "__main__":
    asyncio.run(main())
