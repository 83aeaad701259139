"""Futures: many sends and requests in flight, from one thread.

    python examples/futures.py

send_async and request_async return concurrent.futures.Futures at once, so
the standard tools apply: wait() for a batch, as_completed() to take
replies as they come, result() and exception().  The client runs
synchronous, so a send's Future succeeds only once the server released
the message; the server (a consumer) runs asynchronous."""

import threading
from concurrent.futures import as_completed, wait

import chirp

OPTS = dict(port=0, bind_v6="", disable_encryption=True, timeout=2.0)


def server_loop(server: chirp.Node) -> None:
    """Answer messages whose header is b"ask"; ignore the rest.  Iterating
    over a node ends when the node closes."""
    for msg in server:
        if msg.header == b"ask":
            server.reply(msg, bytes(msg.data).upper())


def main() -> None:
    with (
        chirp.Node(synchronous=True, **OPTS) as client,
        chirp.Node(synchronous=False, **OPTS) as server,
    ):
        helper = threading.Thread(target=server_loop, args=(server,))
        helper.start()
        to_server = ("127.0.0.1", server.port)

        # 100 sends queued at once; wait() for all of them
        sends = [client.send_async(to_server, b"item %d" % i) for i in range(100)]
        done, not_done = wait(sends, timeout=10)
        ok = sum(f.exception() is None for f in done)
        print(f"{len(done)} sends done ({ok} acknowledged), {len(not_done)} pending")

        # requests: take the replies in the order they complete
        requests = [client.request_async(to_server, w, b"ask") for w in (b"a", b"b", b"c")]
        replies = [f.result().data for f in as_completed(requests, timeout=10)]
        print(f"replies, sorted: {sorted(replies)}")

        # a request nobody answers fails by its own timeout
        unanswered = client.request_async(to_server, b"hello?", b"ignore", timeout=0.3)
        print(f"unanswered request: {type(unanswered.exception(timeout=10)).__name__}")

        # a callback runs when the Future finishes (on chirp's pump thread,
        # or at once in this one if it already has)
        finished = threading.Event()
        fut = client.send_async(to_server, b"last one")
        fut.add_done_callback(lambda f: finished.set())
        print(f"callback ran: {finished.wait(timeout=10)}")
    helper.join(timeout=10)  # the server closed: its loop ended


if __name__ == "__main__":
    main()
