"""The chirp command line, end to end: listen in one process, send and
request from others, as a shell user would."""

from __future__ import annotations

import base64
import json
import sys

from support.child import Child, run
from support.net import LOCAL, free_port, free_port_v4_and_v6

import chirp
from chirp.cli import parse_address

CHIRP = [sys.executable, "-m", "chirp"]


def listener(*args) -> tuple[Child, int]:
    port = free_port_v4_and_v6()
    child = Child([*CHIRP, "listen", "--port", port, "--plaintext", *args], name="chirp listen")
    return child, port


def chirp_run(*args, input: bytes | None = None):
    return run([*CHIRP, *args], timeout=60, input=input)


def test_listen_prints_json_lines_of_what_send_sends():
    child, port = listener("--json", "--count", "4", "--stats")
    with child:
        to = f"{LOCAL}:{port}"
        # the listener may still be starting: the first send retries
        for _ in range(50):
            done = chirp_run("send", to, "hello", "--header", "h1", "--timeout", "2")
            if done.returncode == 0:
                break
        assert done.returncode == 0, done.stderr
        lines = chirp_run("send", to, "--lines", input=b"one\ntwo\n\xff\xfe\n")
        assert lines.returncode == 0, lines.stderr
        got = [json.loads(child.readline(20)) for _ in range(4)]
        assert child.wait(20) == 0
    assert got[0]["data"] == "hello" and got[0]["header"] == "h1"
    assert [g.get("data") for g in got[1:3]] == ["one", "two"]
    assert base64.b64decode(got[3]["data_base64"]) == b"\xff\xfe"
    assert got[0]["address"] == LOCAL and len(got[0]["identity"]) == 32
    assert "4 message(s) received" in child.stderr
    stats = json.loads(child.stderr.strip().splitlines()[-1])
    assert stats["messages_received"] == 4 and stats["connections_opened"] >= 1


def test_send_reads_all_of_stdin_as_one_message_and_listen_prints_text():
    child, port = listener("--count", "2")
    with child:
        for _ in range(50):
            done = chirp_run("send", f"{LOCAL}:{port}", "-", input=b"a b\tc")
            if done.returncode == 0:
                break
        assert done.returncode == 0, done.stderr
        assert chirp_run("send", f"{LOCAL}:{port}", "x", "--header", "kind").returncode == 0
        first, second = child.readline(20), child.readline(20)
    host_port, data = first.split(" ", 1)
    assert host_port.startswith(f"{LOCAL}:") and data == "a b\tc"
    assert second.endswith(" [kind] x")


def test_request_prints_the_reply_of_an_echoing_listener():
    child, port = listener("--echo", "--count", "1")
    with child:
        for _ in range(50):
            done = chirp_run("request", f"{LOCAL}:{port}", "ping?", "--json", "--timeout", "2")
            if done.returncode == 0:
                break
        assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["data"] == "ping?" and reply["port"] == port


def test_send_to_nobody_fails_with_a_message_and_exit_code_1():
    done = chirp_run("send", f"{LOCAL}:{free_port()}", "lost?", "--timeout", "0.5")
    assert done.returncode == 1
    assert "chirp send: 1 of 1 failed" in done.stderr


def test_bad_arguments_are_named():
    done = chirp_run("send", "nowhere", "x")
    assert done.returncode == 2 and "expected HOST:PORT, got 'nowhere'" in done.stderr
    done = chirp_run("listen", "--port", "70000", "--plaintext")
    assert done.returncode == 1 and "port" in done.stderr
    assert parse_address("[::1]:2998") == ("::1", 2998)


def test_version_and_help():
    done = chirp_run("--version")
    assert done.stdout.strip() == f"chirp {chirp.__version__}"
    done = chirp_run("--help")
    assert done.returncode == 0
    for command in ("listen", "send", "request", "demo", "pki", "bench"):
        assert command in done.stdout
    assert "SUPPRESS" not in done.stdout and "_peer" not in done.stdout


def test_router_forwards_from_the_shell():
    """chirp send -> chirp router -> chirp listen, each its own process."""
    child, port = listener("--json", "--count", "2")
    rport = free_port_v4_and_v6()
    to = f"{LOCAL}:{port}"
    router = Child(
        [*CHIRP, "router", "--port", rport, "--plaintext", "--to", to], name="chirp router"
    )
    with child, router:
        for _ in range(50):
            done = chirp_run("send", f"{LOCAL}:{rport}", "via the router", "--timeout", "2")
            if done.returncode == 0:
                break
        assert done.returncode == 0, done.stderr + router.stderr
        assert chirp_run("send", f"{LOCAL}:{rport}", "again").returncode == 0
        got = [json.loads(child.readline(20)) for _ in range(2)]
        assert child.wait(20) == 0
    assert [g["data"] for g in got] == ["via the router", "again"]
    assert all(g["port"] == rport for g in got)  # it came from the router
