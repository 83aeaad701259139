"""Producer -> router -> workers, with chirp.Router.

    python examples/router.py

The seed's rule of thumb: the producer and the router are synchronous,
the workers asynchronous.  The router forwards each message to a worker
(round robin) and releases it only once the worker took it, so the
producer's send returns when a worker has the job.  A worker's reply
comes back to the producer through the router.  A worker that is gone
is skipped; a job a worker rejects (its handler raised) fails at the
producer with RejectedError; and when no worker is left, the producer
gets RejectedError naming why, instead of a silent loss."""

import threading

import chirp

OPTS = dict(port=0, bind_v6="", disable_encryption=True)


def start_worker(name: str) -> chirp.Node:
    """An asynchronous worker answering each job (serve), on a thread."""

    def handle(msg: chirp.Message) -> bytes:
        if msg.data == b"poison":
            raise ValueError("cannot do this job")
        print(f"{name}: {msg.data.decode()}")
        return b"done by " + name.encode()

    node = chirp.Node(synchronous=False, **OPTS)
    threading.Thread(target=node.serve, args=(handle, 2), daemon=True).start()
    return node


def main() -> None:
    w1, w2 = start_worker("worker 1"), start_worker("worker 2")
    targets = [("127.0.0.1", w1.port), ("127.0.0.1", w2.port)]
    with (
        chirp.Node(synchronous=True, auto_release=False, timeout=1.0, **OPTS) as rnode,
        chirp.Node(synchronous=True, timeout=5.0, **OPTS) as producer,
    ):
        router = chirp.Router(rnode, targets)
        threading.Thread(target=router.run, daemon=True).start()
        to_router = ("127.0.0.1", rnode.port)

        for i in range(4):  # round robin; the reply comes back through the router
            answer = producer.request(to_router, b"job %d" % i)
            print(f"producer: job {i} answered: {answer.data.decode()}")

        try:
            producer.send(to_router, b"poison")
        except chirp.RejectedError as e:
            print(f"producer: poison rejected: {e.reason}")

        w1.close()  # a worker goes away: the router skips it
        for i in range(4, 6):  # a producer that gets answers must read them: request
            answer = producer.request(to_router, b"job %d" % i)
            print(f"producer: job {i} answered: {answer.data.decode()}")

        w2.close()  # nobody left
        try:
            producer.request(to_router, b"job 6")
        except chirp.RejectedError as e:
            print(f"producer: job 6 failed: {e.reason.split(';')[0]}")
        router.stop()
        print(f"router: {router.counts}")


if __name__ == "__main__":
    main()
