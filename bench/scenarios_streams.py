"""Benchmark scenarios 1-4: streams and round trips between two processes.

1 asynchronous stream, 2 synchronous (acknowledged) stream, 3 request/reply,
4 TLS beside plaintext in a network namespace of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys

from harness import (
    BENCH_DIR,
    BenchError,
    Child,
    Env,
    build_program,
    chirp_cmd,
    free_port,
    result_kv,
    run_stream,
)
from report import err_row, fmt_size, guard, make_row, stream_row
from worker_util import KIB, MIB, emit

TLS_ADDRESS = "198.18.0.1"


def scenario1(env: Env) -> list[dict]:
    """Asynchronous streams of 64 B, 1 KiB, 1 MiB: chirp, chirp's batch API,
    pyzmq PUSH/PULL, libchirp; rates at the receiver."""
    rows: list[dict] = []
    # Rows of about a second or more: at 200,000 messages (a fifth of a
    # second) a row's rate swung with its start (pyzmq 64 B: 0.63-1.48M
    # in three runs).  libchirp, 20 times slower, keeps its old counts.
    sizes = ((64, 1_000_000, 200_000, 20_000), (KIB, 500_000, 100_000, 10_000),
             (MIB, 3000, 1000, 60))  # fmt: skip
    for size, full, lc_full, quick in sizes:
        n = env.n(full, quick)
        lc_n = env.n(lc_full, quick)
        dl = env.deadline
        base = {"size": size, "count": n, "deadline": dl, "sync": False}
        rs = {"count": n, "deadline": dl, "sync": False}
        case = "async stream"

        def chirp_plain(base=base, rs=rs, n=n, size=size, dl=dl, case=case, mode="async"):
            s, r = run_stream(
                env,
                env.chirp_cmd(dict(rs, role="chirp-recv")),
                dict(base, role="chirp-send", mode=mode),
                env.chirp_cmd,
                dl + 30,
            )
            if mode == "post":
                return stream_row(1, case, "chirp post()", size, n, s, r)
            return stream_row(1, case, "chirp", size, n, s, r, ref=True)

        def chirp_post(base=base, rs=rs, n=n, size=size, dl=dl, case=case):
            return chirp_plain(base, rs, n, size, dl, case, mode="post")

        def chirp_view(base=base, rs=rs, n=n, size=size, dl=dl, case=case):
            s, r = run_stream(
                env,
                env.chirp_cmd(dict(rs, role="chirp-recv", copy=False)),
                dict(base, role="chirp-send", mode="async"),
                env.chirp_cmd,
                dl + 30,
            )
            return stream_row(1, case, "chirp recv(copy=False)", size, n, s, r)

        def chirp_batch(base=base, rs=rs, n=n, size=size, dl=dl, case=case, data_only=False):
            s, r = run_stream(
                env,
                env.chirp_cmd(dict(rs, role="chirp-recv", batch=256, data_only=data_only)),
                dict(base, role="chirp-send", mode="batch"),
                env.chirp_cmd,
                dl + 30,
            )
            system = "chirp batch, data only" if data_only else "chirp batch API"
            return stream_row(1, case, system, size, n, s, r)

        def chirp_data(base=base, rs=rs, n=n, size=size, dl=dl, case=case):
            return chirp_batch(base, rs, n, size, dl, case, data_only=True)

        def zmq_(base=base, rs=rs, n=n, size=size, dl=dl, case=case):
            s, r = run_stream(
                env,
                env.chirp_cmd(dict(rs, role="zmq-pull")),
                dict(base, role="zmq-push"),
                env.chirp_cmd,
                dl + 30,
            )
            return stream_row(1, case, "pyzmq PUSH/PULL", size, n, s, r, peer=True)

        def lc(base=base, rs=rs, n=lc_n, size=size, dl=dl, case=case):
            s, r = run_stream(
                env,
                env.lc_cmd(dict(rs, role="lc-recv", own_port=free_port(), count=n)),
                dict(base, role="lc-send", mode="async", own_port=free_port(), count=n),
                env.lc_cmd,
                dl + 30,
                recv_env=env.lc_env(),
                send_env=env.lc_env(),
            )
            return stream_row(1, case, "libchirp async", size, n, s, r, peer=True)

        guard(rows, 1, case, "chirp", size, chirp_plain)
        guard(rows, 1, case, "chirp post()", size, chirp_post)
        if size == MIB:  # the data's own buffer, handed over
            guard(rows, 1, case, "chirp recv(copy=False)", size, chirp_view)
        guard(rows, 1, case, "chirp batch API", size, chirp_batch)
        guard(rows, 1, case, "chirp batch, data only", size, chirp_data)
        guard(rows, 1, case, "pyzmq PUSH/PULL", size, zmq_, skip=env.zmq_why)
        guard(rows, 1, case, "libchirp async", size, lc, skip=env.lc_why)
    return rows


def _reqrep_rows(env: Env, scen: int, case: str, n: int, ref_sys: str) -> list[dict]:
    """chirp request() vs an echo process, and pyzmq REQ/REP."""
    rows: list[dict] = []
    dl = env.deadline

    def chirp_rr():
        s, _ = run_stream(
            env,
            env.chirp_cmd({"role": "chirp-echo", "deadline": dl + 20}),
            {"role": "chirp-request", "size": 64, "count": n, "deadline": dl},
            env.chirp_cmd,
            dl + 30,
        )
        return stream_row(scen, case, "chirp request()", 64, n, s, None, at="send", ref=True)

    def zmq_rr():
        s, _ = run_stream(
            env,
            env.chirp_cmd({"role": "zmq-rep", "deadline": dl + 20}),
            {"role": "zmq-req", "size": 64, "count": n, "deadline": dl},
            env.chirp_cmd,
            dl + 30,
        )
        return stream_row(
            scen, case, "pyzmq REQ/REP", 64, n, s, None, at="send", peer=True, vs=ref_sys
        )

    def bare(spin: bool):
        def go():
            exe = _build_pingpong(env)
            extra = ["spin"] if spin else []
            srv = Child([exe, "server", *extra])
            cli = None
            try:
                port = srv.expect("READY", 30).split()[0]
                cli = Child([exe, "client", port, str(n), "64", *extra])
                res = result_kv(cli.expect("RESULT", dl + 30))
            finally:
                for x in (cli, srv):
                    if x is not None:
                        x.kill()
            system = "bare C ping-pong, " + ("spinning" if spin else "blocking")
            return stream_row(
                scen, case, system, 64, n, res, None, at="send", peer=True, vs=ref_sys
            )

        return go

    if scen == 3:
        guard(rows, scen, case, "chirp request()", 64, chirp_rr)
    guard(rows, scen, case, "pyzmq REQ/REP", 64, zmq_rr, skip=env.zmq_why)
    if scen == 3:  # the floor: no chirp, no Python
        why = "" if env.src is not None else "the source tree was not found (--src DIR)"
        for spin in (False, True):
            name = "bare C ping-pong, " + ("spinning" if spin else "blocking")
            guard(rows, scen, case, name, 64, bare(spin), skip=why)
    return rows


def _build_pingpong(env: Env) -> str:
    """bench/c_pingpong.c, built once: plain TCP round trips, no chirp."""
    src = os.path.join(env.src, "bench", "c_pingpong.c")
    return build_program(src, os.path.join(env.tmp, "c_pingpong"))


def scenario2(env: Env) -> list[dict]:
    """Acknowledged 64 B streams: chirp and libchirp pipelined and blocking,
    pyzmq REQ/REP; rates at the sender."""
    rows: list[dict] = []
    dl = env.deadline
    case = "sync (acknowledged) stream"
    n_pipe = env.n(250_000, 5000)  # about a second (see scenario1)
    n_lc = env.n(50_000, 5000)  # libchirp's pipelined rows, 50 times slower
    n_block = env.n(10_000, 1000)

    def chirp_run(mode: str, n: int, system: str, identity: str = "", slots: int = 0):
        def go():
            recv = {"role": "chirp-recv", "count": n, "deadline": dl, "sync": True, "slots": slots}
            s, r = run_stream(
                env,
                env.chirp_cmd(dict(recv, identity=identity[::-1])),
                {
                    "role": "chirp-send",
                    "mode": mode,
                    "size": 64,
                    "count": n,
                    "deadline": dl,
                    "sync": True,
                    "identity": identity,
                    "slots": slots,
                },
                env.chirp_cmd,
                dl + 30,
            )
            return stream_row(2, case, system, 64, n, s, r, at="send", ref=True, group=mode)

        return go

    def lc_run(mode: str, n: int, system: str):
        def go():
            s, r = run_stream(
                env,
                env.lc_cmd(
                    {
                        "role": "lc-recv",
                        "count": n,
                        "deadline": dl,
                        "sync": True,
                        "own_port": free_port(),
                    }
                ),
                {
                    "role": "lc-send",
                    "mode": mode,
                    "size": 64,
                    "count": n,
                    "deadline": dl,
                    "sync": True,
                    "own_port": free_port(),
                },
                env.lc_cmd,
                dl + 30,
                recv_env=env.lc_env(),
                send_env=env.lc_env(),
            )
            return stream_row(2, case, system, 64, n, s, r, at="send", peer=True, group=mode)

        return go

    guard(rows, 2, case, "chirp send_async", 64, chirp_run("async", n_pipe, "chirp send_async"))
    # Receiver and sender with configured identities pipeline as random
    # ones do: the window comes from the receiver's capability frame, not
    # from its identity.
    system = "chirp send_async, own identity"
    ident = "00112233445566778899aabbccddeeff"
    guard(rows, 2, case, system, 64, chirp_run("async", n_pipe, system, ident))
    # The window is what bounds this stream (docs/guide.md): both nodes
    # with max_slots = max_inflight = 128 instead of 16.
    system = "chirp send_async, window 128"
    guard(rows, 2, case, system, 64, chirp_run("async", 4 * n_pipe, system, slots=128))
    system = "libchirp sync futures"
    guard(rows, 2, case, system, 64, lc_run("async", n_lc, system), skip=env.lc_why)
    guard(rows, 2, case, "chirp send()", 64, chirp_run("blocking", n_block, "chirp send()"))
    system = "libchirp sync blocking"
    guard(rows, 2, case, system, 64, lc_run("blocking", n_block, system), skip=env.lc_why)
    for r in _reqrep_rows(env, 2, case, n_block, "chirp send()"):
        r["group"] = "blocking"
        rows.append(r)
    return rows


def scenario3(env: Env) -> list[dict]:
    """Request/reply round trips, one outstanding: chirp, pyzmq REQ/REP."""
    return _reqrep_rows(env, 3, "request/reply round trip", env.n(10_000, 1000), "chirp request()")


def _netns_ok() -> str:
    """Why scenario 4 cannot run here, or "" when it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip missing (util-linux, iproute2)"
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return "cannot create a network namespace: " + r.stderr.strip()
    return ""


def scenario4(env: Env) -> list[dict]:
    """chirp's TLS streams beside plaintext ones, in a network namespace of
    their own (run.py netns, see netns_main)."""
    case = "TLS vs plaintext stream"
    why = _netns_ok()
    if why:
        return [err_row(4, case, "chirp TLS", None, why, True)]
    try:
        from chirp.pki import make_pki

        pki = make_pki(os.path.join(env.tmp, "pki"), ["a", "b"])
    except Exception as e:  # noqa: BLE001
        return [err_row(4, case, "chirp TLS", None, f"make_pki failed: {e}")]
    cases = []
    for size, full, quick in ((64, 100_000, 10_000), (MIB, 500, 40)):
        cases.append({"size": size, "count": env.n(full, quick)})
    spec = {
        "cases": cases,
        "deadline": env.deadline,
        "a": str(pki["a"]),
        "b": str(pki["b"]),
        "dh": str(pki["dh"]),
    }
    inner = " ".join(
        [
            f"ip link set lo up && ip addr add {TLS_ADDRESS}/32 dev lo && exec",
            shlex.quote(sys.executable),
            shlex.quote(os.path.join(BENCH_DIR, "run.py")),
            "netns",
            shlex.quote(json.dumps(spec)),
        ]
    )
    c = Child(["unshare", "-n", "sh", "-c", inner])
    try:
        total = sum(2 * (env.deadline + 40) for _ in cases)
        out = json.loads(c.expect("ROWS", total))
    except BenchError as e:
        return [err_row(4, case, "chirp TLS", None, str(e))]
    finally:
        c.kill()
    for r in out:
        print(
            f"  [4] {case:<28} {r['system']:<22} {fmt_size(r['size']):>7}  "
            + (f"{r['rate']:>12,.0f} msg/s" if r.get("rate") else r.get("note", "")),
            file=sys.stderr,
        )
    return out


def netns_main(spec_json: str) -> int:
    """Inside the namespace: TLS and plaintext streams; prints ROWS <json>."""
    spec = json.loads(spec_json)
    env = argparse.Namespace(chirp_cmd=chirp_cmd)
    rows: list[dict] = []
    dl = spec["deadline"]
    case = "TLS vs plaintext stream"
    for c in spec["cases"]:
        size, n = c["size"], c["count"]
        for system, tls in (("chirp plaintext", False), ("chirp TLS", True)):
            recv = {"role": "chirp-recv", "count": n, "deadline": dl}
            send = {
                "role": "chirp-send",
                "mode": "async",
                "size": size,
                "count": n,
                "deadline": dl,
                "host": TLS_ADDRESS,
            }
            if tls:
                recv.update(cert=spec["b"], dh=spec["dh"])
                send.update(cert=spec["a"], dh=spec["dh"])

            def go(recv=recv, send=send, system=system, tls=tls, size=size, n=n):
                s, r = run_stream(env, env.chirp_cmd(recv), send, env.chirp_cmd, dl + 30)
                return stream_row(4, case, system, size, n, s, r, ref=tls, peer=not tls)

            guard(rows, 4, case, system, size, go)
        if size >= MIB:  # the ceiling: OpenSSL alone, no chirp, no Python
            for mode in ("tls", "plain"):
                system = f"bare C {'TLS' if mode == 'tls' else 'plaintext'} (tls_ceiling.c)"

                def bare(mode=mode, system=system, n=n):
                    return _tls_ceiling(spec, mode, system, n, dl)

                guard(rows, 4, case, system, size, bare)
    emit("ROWS", rows)
    return 0


def _tls_ceiling(spec: dict, mode: str, system: str, n: int, dl: float) -> dict:
    """One run of bench/tls_ceiling.c: MiB/s as its receiver saw them."""
    exe = build_program(
        os.path.join(BENCH_DIR, "tls_ceiling.c"),
        os.path.join(os.path.dirname(spec["a"]), "tls_ceiling"),
        ("-lssl", "-lcrypto"),
    )
    count = max(n, 200)
    r = subprocess.run(
        [exe, spec["a"], mode, str(count)], capture_output=True, text=True, timeout=dl + 30
    )
    line = next((x for x in r.stdout.splitlines() if "receiver:" in x), "")
    if r.returncode != 0 or not line:
        raise BenchError(f"tls_ceiling {mode}: {r.stdout[-500:]} {r.stderr[-500:]}")
    rate = float(line.split("receiver:")[1].split()[0])  # MiB/s = 1 MiB msg/s
    # The TLS row's ratio is chirp TLS over it; the plaintext one is for reading.
    return make_row(4, "TLS vs plaintext stream", system, MIB, count=count, rate=rate,
                    mbps=rate * MIB / 1e6, note="", ok=True, peer=mode == "tls",
                    vs="chirp TLS")  # fmt: skip
