"""What a Python program expects around the API: an unclosed node warns
(ResourceWarning, shown with -X dev) and is closed; errors say what
happened (a message too big for its receiver, a bad address)."""

from __future__ import annotations

import gc
import logging
import sys
import warnings

import pytest
from support.child import run
from support.nodes import addr

import chirp


def test_an_unclosed_node_warns_when_collected(node_factory):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        node = node_factory.collectable()
        port = node.port
        del node
        gc.collect()
    found = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(found) == 1, [str(w.message) for w in caught]
    assert f"unclosed chirp.Node on port {port}" in str(found[0].message)


def test_a_closed_node_does_not_warn(node_factory):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        node = node_factory.collectable()
        node.close()
        del node
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_the_warning_shows_with_dev_mode():
    res = run(
        [
            sys.executable, "-X", "dev", "-c",
            "import gc, chirp\n"
            "n = chirp.Node(port=0, disable_encryption=True, bind_v6='')\n"
            "del n\ngc.collect()\nprint('after')\n",
        ],
        timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.describe()
    assert "ResourceWarning: unclosed chirp.Node on port" in res.stderr, res.describe()
    assert res.stdout.strip() == "after"


def test_a_message_too_big_for_the_receiver_says_so(node_factory, caplog):
    """The receiver refuses it (and logs a warning naming the sender and
    the size); the synchronous sender's error names the cause, whether the
    message went out before the receiver's capability frame came (the
    receiver cut the connection) or after (it fails before being written)."""
    rx = node_factory(synchronous=False, max_msg_size=1000)
    tx = node_factory(synchronous=True)
    with caplog.at_level(logging.WARNING, logger="chirp"):
        for _ in range(2):
            with pytest.raises(chirp.MessageSizeError) as ei:
                tx.send(addr(rx), b"x" * 2000)
            assert f"exceeds the max_msg_size of 1000 that 127.0.0.1:{rx.port} announced" in str(
                ei.value
            )
        fut = tx.send_async(addr(rx), b"fits")  # synchronous: rx must take it
        assert rx.recv(timeout=5.0).data == b"fits"
        assert fut.result(timeout=5.0) is None
        rx.close()  # its pump has logged what it had
    refused = [r for r in caplog.records if "refused a message of 2000 bytes" in r.getMessage()]
    # once at least; twice only if the sender forgot the remote in between
    assert 1 <= len(refused) <= 2, [r.getMessage() for r in caplog.records]
    assert f"127.0.0.1:{tx.port}" in refused[0].getMessage()
    assert "max_msg_size is 1000" in refused[0].getMessage()


def test_an_asynchronous_sender_learns_the_limit_from_the_frame(node_factory):
    rx = node_factory(synchronous=False, max_msg_size=1000)
    tx = node_factory(synchronous=False)
    tx.send(addr(rx), b"hello")
    rx.reply(rx.recv(timeout=5.0), b"hi")  # after rx's capability frame, so
    assert tx.recv(timeout=5.0).data == b"hi"  # tx has read the frame now
    with pytest.raises(chirp.MessageSizeError, match="exceeds the max_msg_size of 1000"):
        tx.send(addr(rx), b"x" * 5000)
    tx.send(addr(rx), b"still connected")
    assert rx.recv(timeout=5.0).data == b"still connected"


@pytest.mark.parametrize("bad", [["127.0.0.1", 2998], "127.0.0.1", ("127.0.0.1",), None])
def test_a_bad_address_is_a_type_error_naming_it(pair, bad):
    a, _ = pair
    for call in (
        lambda: a.send_async(bad, b"x"),
        lambda: a.send(bad, b"x"),
        lambda: a.request_async(bad, b"x"),
        lambda: a.send_many(bad, [b"x"]),
    ):
        with pytest.raises(TypeError, match=r"address must be a \(host, port\) tuple"):
            call()
