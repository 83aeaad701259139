"""Handlers: node.serve() answers requests on a pool of worker threads.

    python examples/serve.py

serve(handler, workers=4) blocks, running handler(msg) for every message
on four threads; what the handler returns is sent as the reply before
the message is released.  At most four messages are in progress: the rest
wait in the node's slots.  A handler that raises costs that message only:
the error is logged (logger "chirp") and serving goes on.  Here the client
runs in a thread of its own and calls stop() when it is done."""

import threading
import time
from concurrent.futures import wait

import chirp

OPTS = dict(port=0, bind_v6="", disable_encryption=True, timeout=2.0)

lock = threading.Lock()
running = 0
most = 0


def square(msg: chirp.Message) -> bytes | tuple[bytes, bytes]:
    """The handler: the square of the number sent, after some slow work."""
    global running, most
    with lock:
        running += 1
        most = max(most, running)
    try:
        n = int(msg.data)  # b"oops" raises ValueError: logged, the request rejected
        time.sleep(0.05)
        return b"%d" % (n * n), b"squared"  # (data, header)
    finally:
        with lock:
            running -= 1


def client(service: chirp.Node) -> None:
    """Twenty requests at once, one bad one, then stop the service."""
    try:
        with chirp.Node(synchronous=True, **OPTS) as node:
            to_service = ("127.0.0.1", service.port)
            futs = [node.request_async(to_service, b"%d" % i) for i in range(20)]
            wait(futs, timeout=10)
            answers = [f.result() for f in futs]
            print(f"squares: {[int(a.data) for a in answers][:6]} ... header {answers[0].header!r}")
            try:
                node.request(to_service, b"oops", timeout=5.0)
            except chirp.RejectedError as e:
                print(f"b'oops' was rejected: {e.reason}")
    finally:
        service.stop()  # serve() returns once the work in progress is done


def main() -> None:
    with chirp.Node(synchronous=False, **OPTS) as service:
        helper = threading.Thread(target=client, args=(service,))
        helper.start()
        service.serve(square, workers=4)
        helper.join()
    print(f"serve() returned; at most {most} handlers ran at once")


if __name__ == "__main__":
    main()
