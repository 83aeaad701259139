"""chirp's command line (the ``chirp`` script and ``python -m chirp``):
listen, send and request from a shell, the demo, the PKI helper."""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from . import ChirpError, Message, Node, __version__


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 address in brackets: [::1]:2998) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _node_options(p: argparse.ArgumentParser, port: int) -> None:
    """The options every command that makes a node has."""
    g = p.add_argument_group("node")
    g.add_argument("--port", type=int, default=port, help=f"port to listen on (default {port})")
    g.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    g.add_argument("--max-slots", type=int, default=16, help="receive slots per connection")
    g.add_argument("--cert-chain", metavar="PEM", help="TLS: certificate, CA, key (chirp pki)")
    g.add_argument("--dh-params", metavar="PEM", help="TLS: DH parameters for TLS 1.2 peers")
    g.add_argument(
        "--plaintext", action="store_true", help="no TLS to any peer (default: TLS off loopback)"
    )


def _node(args: argparse.Namespace, **more: Any) -> Node:
    return Node(
        port=args.port,
        timeout=args.timeout,
        max_slots=args.max_slots,
        cert_chain_pem=args.cert_chain,
        dh_params_pem=args.dh_params,
        disable_encryption=args.plaintext,
        **more,
    )


def _as_json(msg: Message) -> str:
    """One message as a JSON line: data and header as text when they are
    UTF-8, else base64 (data_base64, header_base64)."""
    out: dict[str, Any] = {
        "address": msg.address,
        "port": msg.port,
        "identity": msg.identity.hex(),
        "remote_identity": msg.remote_identity.hex(),
    }
    for name, raw in (("header", msg.header), ("data", msg.data)):
        try:
            out[name] = bytes(raw).decode()
        except UnicodeDecodeError:
            out[name + "_base64"] = base64.b64encode(raw).decode()
    return json.dumps(out)


def _as_text(msg: Message) -> str:
    head = f" [{bytes(msg.header).decode(errors='backslashreplace')}]" if msg.header else ""
    return f"{msg.address}:{msg.port}{head} {bytes(msg.data).decode(errors='backslashreplace')}"


def _listen(args: argparse.Namespace) -> int:
    """Print what arrives (one line per message), until --count or Ctrl-C."""
    seen = 0
    # Each message is released after it was printed (and answered, with
    # --echo): a synchronous sender's acknowledgement comes after the reply.
    with _node(args, synchronous=False, auto_release=False) as node:
        print(f"listening on port {node.port}", file=sys.stderr, flush=True)
        try:
            while args.count is None or seen < args.count:
                with node.recv() as msg:
                    print(_as_json(msg) if args.json else _as_text(msg), flush=True)
                    seen += 1
                    if args.echo:
                        node.reply(msg, msg.data, msg.header)
        except KeyboardInterrupt:
            pass
        stats = node.stats() if args.stats else None
    print(f"{seen} message(s) received", file=sys.stderr)
    if stats is not None:
        print(json.dumps(stats), file=sys.stderr)
    return 0


def _payloads(args: argparse.Namespace, stdin: BinaryIO) -> Iterator[bytes]:
    if args.data is not None and args.data != "-":
        yield args.data.encode()
    elif args.lines:
        for line in stdin:
            yield line.rstrip(b"\r\n")
    else:
        yield stdin.read()


def _send(args: argparse.Namespace) -> int:
    """Send DATA, or stdin, and wait until each is acknowledged (--async:
    written)."""
    header = args.header.encode()
    with _node(args, synchronous=not args.no_ack) as node:
        futs = [node.send_async(args.address, d, header) for d in _payloads(args, sys.stdin.buffer)]
        failed = [f.exception() for f in futs if f.exception() is not None]
    if failed:
        print(f"chirp send: {len(failed)} of {len(futs)} failed: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _request(args: argparse.Namespace) -> int:
    """Send DATA and print the reply's data."""
    with _node(args, synchronous=False) as node:
        answer = node.request(args.address, args.data.encode(), args.header.encode())
    if args.json:
        print(_as_json(answer))
    else:
        sys.stdout.buffer.write(bytes(answer.data) + b"\n")
    return 0


def _router(args: argparse.Namespace) -> int:
    """Forward what arrives to the --to targets until Ctrl-C (chirp.Router)."""
    from .router import Router

    with _node(args, synchronous=True, auto_release=False) as node:
        router = Router(node, args.to, args.policy)
        targets = ", ".join(f"{h}:{p}" for h, p in router.targets)
        print(f"routing port {node.port} to {targets} ({args.policy})", file=sys.stderr, flush=True)
        try:
            router.run()
        except KeyboardInterrupt:
            pass
        counts = ", ".join(f"{k} {v}" for k, v in router.counts.items())
    print(f"router: {counts}", file=sys.stderr)
    return 0


def _pki(args: argparse.Namespace) -> int:
    """Make a CA and node certificate files (libchirp's layout) in a directory."""
    from .pki import PKIError, make_pki

    try:
        paths = make_pki(args.directory, args.name or ["node"], days=args.days)
    except (PKIError, ValueError) as e:
        print(f"chirp pki: {e}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        what = {"ca": "CA certificate", "dh": "DH parameters (dh_params_pem)"}.get(
            name, "node file: certificate, CA, key (cert_chain_pem)"
        )
        print(f"{path}  {what}")
    return 0


def _bench_script() -> str | None:
    """bench/run.py of the chirp source tree around the working directory."""
    here = os.getcwd()
    while True:
        script = os.path.join(here, "bench", "run.py")
        header = os.path.join(here, "csrc", "include", "chirp.h")
        if os.path.exists(script) and os.path.exists(header):
            return script
        up = os.path.dirname(here)
        if up == here:
            return None
        here = up


def _bench(args: argparse.Namespace) -> int:
    """Say where the benchmarks are: they need the source tree (csrc/, the C
    benchmarks), so they live there and not in the package."""
    script = _bench_script()
    cmd = shlex.join([sys.executable, script or "bench/run.py", *args.args])
    print(
        "chirp bench: the benchmarks are not part of the package; they run from\n"
        "chirp's source tree (see bench/README.md there), with a python that has\n"
        f"chirp installed:\n  {cmd}"
        + ("" if script else "\n(no chirp source tree around this directory)"),
        file=sys.stderr,
    )
    return 2


def _demo(args: argparse.Namespace) -> int:
    from ._demo import demo

    return demo(args)


def parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    p = argparse.ArgumentParser(prog="chirp", description="chirp: brokerless message passing")
    p.add_argument("--version", action="version", version=f"chirp {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    ls = sub.add_parser("listen", help="print the messages that arrive, one per line")
    _node_options(ls, 2998)
    ls.add_argument("--json", action="store_true", help="one JSON object per message")
    ls.add_argument("--count", type=int, help="exit after N messages")
    ls.add_argument("--echo", action="store_true", help="answer each message with its data")
    ls.add_argument("--stats", action="store_true", help="at the end, the node's counters (JSON)")
    ls.set_defaults(func=_listen)
    s = sub.add_parser("send", help="send DATA, or stdin, to HOST:PORT")
    s.add_argument("address", type=parse_address, metavar="HOST:PORT")
    s.add_argument("data", nargs="?", help="the message; - or none: stdin")
    s.add_argument("--lines", action="store_true", help="stdin: one message per line")
    s.add_argument("--header", default="", help="the messages' header")
    s.add_argument("--no-ack", action="store_true", help="done when written, not acknowledged")
    _node_options(s, 0)
    s.set_defaults(func=_send)
    r = sub.add_parser("request", help="send DATA to HOST:PORT and print the reply")
    r.add_argument("address", type=parse_address, metavar="HOST:PORT")
    r.add_argument("data")
    r.add_argument("--header", default="", help="the request's header")
    r.add_argument("--json", action="store_true", help="the reply as a JSON object")
    _node_options(r, 0)
    r.set_defaults(func=_request)
    ro = sub.add_parser("router", help="forward what arrives to workers (synchronously)")
    ro.add_argument(
        "--to", type=parse_address, action="append", required=True, metavar="HOST:PORT",
        help="a target (repeat for more)",
    )  # fmt: skip
    ro.add_argument("--policy", choices=("round_robin", "fewest_inflight"), default="round_robin")
    _node_options(ro, 2998)
    ro.set_defaults(func=_router)
    d = sub.add_parser("demo", help="two nodes in two processes exchanging messages")
    d.add_argument("--count", type=int, default=2000, help="messages per scenario")
    d.add_argument("--size", type=int, default=64, help="payload size in bytes")
    d.set_defaults(func=_demo)
    k = sub.add_parser("pki", help="make a CA and node certificate files for TLS")
    k.add_argument("directory", help="where to write ca.pem, NAME.pem and dh.pem")
    k.add_argument("--name", action="append", help="a node file to make (repeatable)")
    k.add_argument("--days", type=int, default=3650, help="validity in days")
    k.set_defaults(func=_pki)
    # prefix_chars="+": no options of its own, so words like --quick are
    # taken as they come and shown in the bench/run.py command it prints.
    b = sub.add_parser(
        "bench", help="where the benchmarks are (in the source tree)", prefix_chars="+"
    )
    b.add_argument("args", nargs="*")
    b.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m chirp`` and the ``chirp`` script."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ChirpError, OSError, TypeError, ValueError) as e:
        print(f"chirp {args.cmd}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
