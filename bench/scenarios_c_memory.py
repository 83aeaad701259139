"""Benchmark scenarios 5 and 6: the C core alone, and memory.

5 builds the core from the source tree with examples/ping.c (one process)
and bench/c_stream.c (two processes); 6 reads the RSS of a node holding
1,000 idle connections and of both ends of a long stream.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import time

from harness import (
    BenchError,
    Child,
    Env,
    fd_count,
    find_cc,
    free_port,
    result_kv,
    rss_kib,
    run_stream,
)
from report import guard, make_row, stream_row
from worker_util import KIB, now


def _build_c(env: Env) -> dict:
    """Compile the core once, then examples/ping.c and bench/c_stream.c."""
    if env.built is not None:
        return env.built
    if env.src is None:
        raise BenchError("the chirp source tree was not found (--src DIR)")
    cc = find_cc()
    out = os.path.join(env.tmp, "c")
    os.makedirs(out, exist_ok=True)
    csrc = os.path.join(env.src, "csrc")
    srcs = sorted(glob.glob(os.path.join(csrc, "**", "*.c"), recursive=True))
    flags = ["-std=c99", "-O2", "-I" + os.path.join(csrc, "include"), "-I" + csrc]
    libs = ["-luv", "-lssl", "-lcrypto"]
    objs = []
    for src in srcs:  # core/conn.c -> core_conn.o
        obj = os.path.join(out, os.path.relpath(src, csrc)[:-2].replace(os.sep, "_") + ".o")
        r = subprocess.run(
            [cc, *flags, "-c", src, "-o", obj], capture_output=True, text=True, timeout=300
        )
        if r.returncode != 0:
            raise BenchError(f"building {src} failed: " + r.stderr[-1500:])
        objs.append(obj)
    built = {}
    for name, main_c in (
        ("c_ping", os.path.join(env.src, "examples", "ping.c")),
        ("c_stream", os.path.join(env.src, "bench", "c_stream.c")),
    ):
        exe = os.path.join(out, name)
        r = subprocess.run(
            [cc, *flags, main_c, *objs, *libs, "-o", exe],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if r.returncode != 0:
            raise BenchError(f"building {name} failed: " + r.stderr[-1500:])
        built[name] = exe
    env.built = built
    return built


def scenario5(env: Env) -> list[dict]:
    """The C core without Python: 64 B streams, asynchronous and synchronous,
    in one process (ping.c) and between two (c_stream.c)."""
    rows: list[dict] = []
    n_async = env.n(1_000_000, 100_000)
    n_sync = env.n(200_000, 20_000)
    dl = env.deadline

    def ping(sync: bool, n: int):
        def go():
            exe = _build_c(env)["c_ping"]
            argv = [exe] + (["-s"] if sync else []) + [str(n), "64"]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=dl)
            line = next((x for x in r.stdout.splitlines() if x.rstrip().endswith("msg/s")), "")
            if r.returncode != 0 or not line:
                raise BenchError(
                    f"c_ping exited {r.returncode}: {r.stdout[-500:]} {r.stderr[-500:]}"
                )
            rate = float(line.split(":")[-1].split()[0])
            return make_row(
                5,
                "C core, one process (ping.c)",
                "chirp C " + ("sync" if sync else "async"),
                64,
                count=n,
                rate=rate,
                mbps=rate * 64 / 1e6,
                note="",
                ok=True,
            )

        return go

    def stream(sync: bool, n: int, slots: int = 0):
        def go():
            exe = _build_c(env)["c_stream"]
            s = (["-s"] if sync else []) + (["-w", str(slots)] if slots else [])
            r = c = None
            try:
                r = Child([exe, "recv", *s, str(n + 1), str(dl)])
                port = r.expect("READY", 30).split()[0]
                c = Child([exe, "send", *s, port, str(n), "64", "4096", str(dl)])
                sres = result_kv(c.expect("RESULT", dl + 30))
                rres = result_kv(r.expect("RESULT", dl + 30))
            finally:
                for x in (c, r):
                    if x is not None:
                        x.kill()
            at = "send" if sync else "recv"
            sres["failed"] = int(sres.get("failed", 0))
            sres["errors"] = []
            rres["received"] = int(rres.get("received", 0))
            return stream_row(
                5,
                "C core, two processes (c_stream.c)",
                "chirp C " + ("sync" if sync else "async") + (f", window {slots}" if slots else ""),
                64,
                n,
                sres,
                rres,
                at=at,
            )

        return go

    for sync, n in ((False, n_async), (True, n_sync)):
        name = "chirp C " + ("sync" if sync else "async")
        guard(rows, 5, "C core, one process (ping.c)", name, 64, ping(sync, n))
        guard(rows, 5, "C core, two processes (c_stream.c)", name, 64, stream(sync, n))
    # The window bounds the acknowledged stream (docs/guide.md): 128.
    name = "chirp C sync, window 128"
    stream128 = stream(True, 5 * n_sync, 128)
    guard(rows, 5, "C core, two processes (c_stream.c)", name, 64, stream128)
    return rows


def _mib(kib: float) -> str:
    """KIB as the notes show memory: 18.3 MiB."""
    return f"{kib / 1024:.1f} MiB"


def scenario6(env: Env) -> list[dict]:
    """Memory: RSS per idle connection (chirp, libchirp), and the RSS of
    sender and receiver across a --soak-seconds stream."""
    rows: list[dict] = []
    nconn = 1000
    case = f"RSS, {nconn} idle connections"

    def idle(system: str):
        def go():
            if system == "chirp":
                node = Child(env.chirp_cmd({"role": "chirp-idle"}), stdin=True)
            else:
                node = Child(
                    env.lc_cmd({"role": "lc-idle", "own_port": free_port()}),
                    env=env.lc_env(),
                    stdin=True,
                )
            holder = None
            try:
                port = int(node.expect("READY", 60).split()[0])
                time.sleep(0.5)
                before, fds0 = rss_kib(node.pid), fd_count(node.pid)
                holder = Child(
                    env.chirp_cmd({"role": "conn-holder", "n": nconn, "port": port}), stdin=True
                )
                opened = json.loads(holder.expect("OPEN", 120))
                end = now() + 30
                while now() < end and fd_count(node.pid) < fds0 + opened["open"]:
                    time.sleep(0.1)
                fds1 = fd_count(node.pid)
                time.sleep(1.0)
                after = rss_kib(node.pid)
            finally:
                for c in (holder, node):
                    if c is not None:
                        c.kill()
            held = fds1 - fds0
            per = (after - before) / max(1, held)
            note = (
                f"before {_mib(before)}, after {_mib(after)}, {per:.1f} KiB per connection "
                f"({held} accepted of {opened['open']} opened)"
            )
            if opened.get("errors"):
                note += f"; holder errors: {opened['errors']}"
            return make_row(
                6,
                case,
                system,
                None,
                rate=None,
                note=note,
                ok=held >= nconn * 0.95,
                rss_before_kib=before,
                rss_after_kib=after,
                per_conn_kib=per,
                accepted=held,
            )

        return go

    guard(rows, 6, case, "chirp", None, idle("chirp"))
    guard(rows, 6, case, "libchirp", None, idle("libchirp"), skip=env.lc_why)

    secs = env.soak_seconds
    size = KIB
    scase = f"RSS across a {secs:g} s stream"

    def soak():
        dl = secs + 120
        r = s = None
        samples: dict = {"receiver": [], "sender": []}
        try:
            r = Child(env.chirp_cmd({"role": "chirp-soak-recv", "deadline": dl}))
            port = int(r.expect("READY", 60).split()[0])
            s = Child(
                env.chirp_cmd(
                    {
                        "role": "chirp-soak-send",
                        "port": port,
                        "size": size,
                        "seconds": secs,
                        "deadline": dl,
                    }
                )
            )
            s.expect("STARTED", 60)  # sample from here: the sender's node is up
            end = now() + dl
            while now() < end and s.proc.poll() is None:
                for name, c in (("receiver", r), ("sender", s)):
                    v = rss_kib(c.pid)
                    if v > 0:
                        samples[name].append(v)
                time.sleep(1.0 if secs >= 20 else 0.25)
            sres = s.result(30)
            rres = r.result(30)
        finally:
            for c in (s, r):
                if c is not None:
                    c.kill()
        out = []
        for name in ("receiver", "sender"):
            v = samples[name] or [0]
            half = len(v) // 2
            # Growth shows as a second half above the first; a bounded
            # window of sends in flight does not.
            max1, max2 = max(v[:half] or v), max(v[half:])
            out.append(
                make_row(
                    6,
                    scase,
                    f"chirp {name}",
                    size,
                    count=sres["ok"],
                    rate=rres["rate"] if name == "receiver" else sres["rate"],
                    mbps=None,
                    ok=True,
                    rss_first_kib=v[0],
                    rss_last_kib=v[-1],
                    rss_max_kib=max(v),
                    rss_max_first_half_kib=max1,
                    rss_max_second_half_kib=max2,
                    samples=len(v),
                    note=f"RSS first {_mib(v[0])}, last {_mib(v[-1])}, max {_mib(max1)} "
                    f"in the first half, {_mib(max2)} in the second"
                    + (
                        f"; received {rres['received']} of {rres.get('sent')}"
                        if rres["received"] != rres.get("sent")
                        else ""
                    ),
                )
            )
        return out

    guard(rows, 6, scase, "chirp", size, soak)

    # A stream into a node that holds nconn idle connections beside it, and
    # into one that holds none: what the idle ones cost the busy one.
    n = env.n(1_000_000, 30_000)  # about a second, as scenario 1's rows
    icase = f"64 B stream beside {nconn} idle connections"

    def beside(port: int) -> Child:
        holder = Child(env.chirp_cmd({"role": "conn-holder", "n": nconn, "port": port}), stdin=True)
        opened = json.loads(holder.expect("OPEN", 120))
        if opened["open"] < nconn:
            raise BenchError(f"only {opened['open']} of {nconn} connections opened")
        time.sleep(1.0)  # the node accepts them and reads their handshakes
        return holder

    def stream(idle: bool):
        def go():
            recv = {"role": "chirp-recv", "count": n, "deadline": env.deadline}
            recv["max_peer_connections"] = 0
            send = {"role": "chirp-send", "mode": "async", "size": 64, "count": n}
            s, r = run_stream(
                env,
                env.chirp_cmd(recv),
                dict(send, deadline=env.deadline),
                env.chirp_cmd,
                env.deadline + 30,
                beside=beside if idle else None,
            )
            system = f"chirp, {nconn} idle beside" if idle else "chirp, alone"
            return stream_row(6, icase, system, 64, n, s, r, ref=idle, peer=not idle)

        return go

    guard(rows, 6, icase, f"chirp, {nconn} idle beside", 64, stream(True))
    guard(rows, 6, icase, "chirp, alone", 64, stream(False))
    return rows
