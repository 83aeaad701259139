"""The blocking API: send, recv, request and reply between two nodes.

    python examples/blocking.py

Both nodes run synchronous (the default): a send returns only once the
other node has released the message.  Bob answers on a thread of his own,
so that Alice's blocking calls have somebody to talk to.  Bob receives
with auto_release=False and replies before he releases a request, so
Alice's acknowledgement never comes ahead of her answer."""

import threading

import chirp

OPTS = dict(port=0, bind_v6="", disable_encryption=True, timeout=2.0)


def bob_answers(bob: chirp.Node, count: int) -> None:
    """Bob: print each message; answer the ones that ask (header b"ask")."""
    for _ in range(count):
        with bob.recv(timeout=5.0) as msg:  # released when the block ends
            print(f"bob got {msg.data!r} from port {msg.port}")
            if msg.header == b"ask":
                bob.reply(msg, b"4")  # blocks until Alice released the answer


def main() -> None:
    with (
        chirp.Node(synchronous=True, **OPTS) as alice,
        chirp.Node(synchronous=True, auto_release=False, **OPTS) as bob,
    ):
        to_bob = ("127.0.0.1", bob.port)
        print(f"alice listens on port {alice.port}, bob on port {bob.port}")
        helper = threading.Thread(target=bob_answers, args=(bob, 2))
        helper.start()

        alice.send(to_bob, b"hello")  # returns once Bob released it
        print("alice: send returned, so bob has released the message")

        answer = alice.request(to_bob, b"2 + 2?", header=b"ask", timeout=5.0)
        print(f"alice: the answer is {answer.data!r}")
        helper.join()

        try:
            bob.recv(timeout=0.2)
        except TimeoutError:  # chirp.ChirpTimeoutError is a TimeoutError
            print("bob: nothing more within 0.2 s (TimeoutError)")

        with chirp.Node(**OPTS) as gone:
            nobody = ("127.0.0.1", gone.port)
        try:  # the port is closed now: nobody listens there
            alice.send(nobody, b"anyone?")
        except chirp.ChirpConnectionError as e:
            print(f"alice: sending to a closed port failed: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
