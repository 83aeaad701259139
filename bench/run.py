"""chirp's benchmark harness: ``python bench/run.py [--quick] [--scenario N]``.

Every measurement runs the sender and the receiver in separate processes on
loopback, chirp right beside a peer system (pyzmq, libchirp 1.2.1) in the
same run, and prints one table.  It runs from the source tree with a python
that has chirp installed (the harness and its workers import chirp from the
installed package, never from src/).  The pieces, all in bench/:

- run.py: this entry point, the options, the run;
- harness.py: worker processes (Child), where things are (Env);
- scenarios_streams.py (1-4), scenarios_c_memory.py (5, 6),
  scenarios_aio.py (7), scenarios_router.py (8);
- report.py: the rows and the table;
- worker.py (``python bench/worker.py SPEC``) with worker_chirp.py,
  worker_pyzmq.py, worker_libchirp.py, worker_aio.py, worker_util.py: the
  processes
  measured.  The libchirp workers run with the libchirp virtualenv's
  python, so these import nothing but the standard library at the top
  (chirp, zmq and libchirp are imported inside the workers that need them).

Scenarios (``--scenario N``, repeatable; default all):

1. asynchronous stream, 64 B / 1 KiB / 1 MiB: chirp, chirp's batch API,
   pyzmq PUSH/PULL, libchirp (asynchronous).  Rate measured at the receiver.
2. synchronous (acknowledged) stream, 64 B: chirp pipelined futures and
   blocking send(), libchirp synchronous (pipelined / blocking), pyzmq
   REQ/REP.  Rate measured at the sender (every message acknowledged).
3. request/reply round trips, 64 B, one outstanding: chirp request() against
   an echo process, pyzmq REQ/REP; p50/p99 latency.
4. TLS stream 64 B and 1 MiB beside plaintext (chirp only), in a network
   namespace of its own (``unshare -n``), address 198.18.0.1.
5. the C core alone: examples/ping.c (one process) and bench/c_stream.c
   (two processes), built from the source tree.
6. memory: RSS of a node holding 1,000 idle connections; RSS across a
   stream of --soak-seconds.
7. asyncio and handlers: asend / async for beside zmq.asyncio PUSH/PULL
   and chirp's blocking stream; arequest beside zmq.asyncio REQ/REP;
   serve() on 4 workers and aserve() beside the blocking echo, for a
   requester with 64 requests outstanding.
8. producer -> chirp.Router -> 2 workers, synchronous end to end, beside
   the producer straight to one worker and pyzmq's zmq.proxy forwarding.

Nothing here asserts speed; the numbers are for reading.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from types import FrameType

from harness import Env, kill_all
from report import add_ratios, format_table
from scenarios_aio import scenario7
from scenarios_c_memory import scenario5, scenario6
from scenarios_router import scenario8
from scenarios_streams import netns_main, scenario1, scenario2, scenario3, scenario4
from worker_util import now

SCENARIOS = {
    1: scenario1,
    2: scenario2,
    3: scenario3,
    4: scenario4,
    5: scenario5,
    6: scenario6,
    7: scenario7,
    8: scenario8,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The harness's options."""
    p.add_argument("--quick", action="store_true", help="every scenario briefly (smoke test)")
    p.add_argument(
        "--scenario",
        type=int,
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument(
        "--soak-seconds",
        type=float,
        default=None,
        help="duration of the memory soak stream (default 600, --quick 10)",
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    p.add_argument("--src", help="chirp source tree (csrc/, examples/, bench/) for scenario 5")
    p.add_argument("--libchirp-python", help="python of a virtualenv with libchirp 1.2.1")


def run(args: argparse.Namespace) -> int:
    """Run the chosen scenarios and print the table: 1 if a chirp row failed."""
    if args.soak_seconds is None:
        args.soak_seconds = 10.0 if args.quick else 600.0
    env = Env(args)
    chosen = sorted(set(args.scenario or SCENARIOS))
    rows: list[dict] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM,)}

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t0 = now()
    try:
        print(
            f"chirp bench: scenarios {chosen}{' (quick)' if args.quick else ''}; "
            f"pyzmq: {env.zmq_why or 'yes'}; libchirp: {env.lc_why or env.lc_python}; "
            f"source tree: {env.src}",
            file=sys.stderr,
            flush=True,
        )
        for s in chosen:
            rows.extend(SCENARIOS[s](env))
    except KeyboardInterrupt:
        print("chirp bench: interrupted", file=sys.stderr)
        return 130
    finally:
        kill_all()
        for s, h in old.items():
            signal.signal(s, h)
        shutil.rmtree(env.tmp, ignore_errors=True)
    add_ratios(rows)
    print(format_table(rows))
    print(f"\n({now() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"quick": args.quick, "scenarios": chosen, "rows": rows}, f, indent=1)
    bad = [r for r in rows if not r.get("ok", True) and r["system"].startswith("chirp")]
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; ``run.py netns SPEC`` is scenario 4 inside its namespace."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["netns"] and len(argv) == 2:
        try:
            return netns_main(argv[1])
        finally:
            kill_all()
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        import chirp  # noqa: F401 - the workers need it; say so once, up front
    except ImportError:
        print(
            f"bench/run.py: chirp is not installed for {sys.executable}; run this "
            "with a python that has it (bash .ci/setup makes .venv)",
            file=sys.stderr,
        )
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
