"""Synchronous producer, synchronous router, asynchronous consumer.

    python examples/router.py

The pattern of the README's "Synchronous producers, asynchronous
consumers": the router receives with auto_release=False, forwards each
message with a blocking send(), and releases the original only after the
forward succeeded.  So a producer's send returns only once the consumer
has the message; and when the consumer is gone, the forward fails, the
router keeps the original unreleased (no acknowledgement), and the
producer's send fails with its timeout instead of succeeding silently."""

import threading
import time

import chirp

OPTS = dict(port=0, bind_v6="", disable_encryption=True)


def consume(consumer: chirp.Node) -> None:
    """The consumer: print each message, then release it (which
    acknowledges it to the router)."""
    for msg in consumer:  # until the node closes
        with msg:
            print(f"consumer: got {msg.data!r}")


def route(router: chirp.Node, target: tuple[str, int], held: list[chirp.Message]) -> None:
    """The router: forward, and release only what was forwarded."""
    for msg in router:
        try:
            router.send(target, msg.data, msg.header)
        except chirp.ChirpError as e:
            print(f"router: forward of {msg.data!r} failed ({type(e).__name__}); not released")
            held.append(msg)  # no release: the producer gets no acknowledgement
            continue
        msg.release()


def main() -> None:
    held: list[chirp.Message] = []
    with (
        chirp.Node(synchronous=False, auto_release=False, **OPTS) as consumer,
        chirp.Node(synchronous=True, auto_release=False, timeout=0.5, **OPTS) as router,
        chirp.Node(synchronous=True, timeout=1.5, **OPTS) as producer,
    ):
        to_router = ("127.0.0.1", router.port)
        to_consumer = ("127.0.0.1", consumer.port)
        threads = [
            threading.Thread(target=consume, args=(consumer,)),
            threading.Thread(target=route, args=(router, to_consumer, held)),
        ]
        for t in threads:
            t.start()

        for i in range(3):
            producer.send(to_router, b"job %d" % i)  # returns once the consumer released it
            print(f"producer: job {i} delivered")

        consumer.close()  # the consumer is gone
        start = time.monotonic()
        try:
            producer.send(to_router, b"job 3")
        except chirp.ChirpTimeoutError:
            took = time.monotonic() - start
            print(f"producer: job 3 failed with ChirpTimeoutError after {took:.1f} s")
    for t in threads:  # each loop ended when its node closed
        t.join(timeout=10)
    print(f"messages the router held back: {len(held)}")


if __name__ == "__main__":
    main()
