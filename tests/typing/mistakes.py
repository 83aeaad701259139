"""Classic mistakes; mypy --strict must report each, on the line
marked with its error code (tests/test_typing.py)."""

from __future__ import annotations

import chirp


def mistakes(peer: tuple[str, int]) -> None:
    with chirp.Node(port=0) as node:
        node.send(peer, "text, not bytes")  # error: arg-type
        node.recv(timeout="5")  # error: arg-type
        answer: bytes = node.request(peer, b"q")  # error: assignment
        print(answer)
        chirp.Node(prot=0)  # error: call-arg
        datas: list[chirp.Message] = node.recv_many_data(8)  # error: assignment
        print(datas)
        node.recv(1.0, False)  # error: call-arg
