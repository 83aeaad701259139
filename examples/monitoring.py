"""A monitoring pipeline: agents -> collector -> monitor.

    python examples/monitoring.py [--agents 3] [--readings 20]
                                  [--libchirp-python PATH [--libchirp-agents 2]]

The seed's rule of thumb: agents (producers that keep no bookkeeping) are
synchronous, so a send returns only when the monitor has the reading;
the collector, a chirp.Router, is synchronous too and releases a reading
only once the monitor took it; the monitor (the consumer) is
asynchronous.  Each agent sends its readings (b"seq=3 cpu=0.42", the
header naming the agent) and, halfway, one malformed reading: the
monitor rejects it, and the agent gets chirp.RejectedError with the
monitor's reason, through the collector.  With --libchirp-python (a python
with libchirp 1.2.1) libchirp agents run beside them, as processes
(monitoring_libchirp_agent.py); libchirp has no reject frame, so for
them the rejected reading is not acknowledged and their connection is
closed: their send fails with libchirp's own error (and the collector
logs a warning saying so).  Exit code 0 only when every reading arrived
exactly once."""

import argparse
import os
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import chirp

OPTS = dict(port=0, bind_v6="", disable_encryption=True)
HERE = os.path.dirname(os.path.abspath(__file__))


def reading(i: int) -> bytes:
    """Reading number i of an agent (deterministic, so the summary is)."""
    return b"seq=%d cpu=%.2f" % (i, (i * 37 % 100) / 100)


class Monitor:
    """The consumer: counts every agent's readings (the header names it)."""

    def __init__(self) -> None:
        self.seqs: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self.cpu: defaultdict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()

    def handle(self, msg: chirp.Message) -> None:
        """serve()'s handler: one reading; a malformed one is rejected."""
        try:
            fields = dict(kv.split(b"=") for kv in msg.data.split())
            seq, cpu = int(fields[b"seq"]), float(fields[b"cpu"])
        except (ValueError, KeyError):
            msg.reject(f"malformed reading {msg.data!r}")  # the sender learns why
            return
        with self.lock:
            self.seqs[msg.header.decode()][seq] += 1
            self.cpu[msg.header.decode()].append(cpu)

    def summary(self, expected: dict[str, int]) -> bool:
        """Print a line per agent; True when each reading came exactly once."""
        ok = set(self.seqs) == set(expected)
        for name in sorted(self.seqs.keys() | expected.keys()):
            seqs, cpu = self.seqs[name], self.cpu[name]
            once = sorted(seqs.elements()) == list(range(expected.get(name, 0)))
            ok = ok and once
            avg = sum(cpu) / len(cpu) if cpu else 0.0
            note = "" if once else f" NOT each of 0..{expected.get(name, 0) - 1} once"
            print(f"monitor: agent {name} sent {seqs.total()} readings (cpu avg {avg:.2f}){note}")
        return ok


def chirp_agent(name: str, collector: tuple[str, int], n: int) -> list[str]:
    """A synchronous chirp agent: n readings, each acknowledged, and a bad one."""
    lines = []
    with chirp.Node(synchronous=True, timeout=5.0, **OPTS) as node:
        for i in range(n):
            if i == n // 2:
                try:
                    node.send(collector, b"seq=? cpu=???", header=name.encode())
                    lines.append(f"{name}: the malformed reading was not rejected")
                except chirp.RejectedError as e:
                    lines.append(f"{name}: the malformed reading was rejected: {e.reason}")
            node.send(collector, reading(i), header=name.encode())  # raises if it fails
    return [f"{name}: {n} of {n} readings acknowledged", *lines]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=3, help="chirp agents")
    p.add_argument("--readings", type=int, default=20, help="readings per agent")
    p.add_argument("--libchirp-python", help="a python with libchirp 1.2.1: add libchirp agents")
    p.add_argument("--libchirp-agents", type=int, default=2)
    args = p.parse_args()
    if args.readings < 1:
        p.error("--readings must be at least 1")
    n, names = args.readings, [f"chirp-{i + 1}" for i in range(args.agents)]
    lc_names = [f"libchirp-{i + 1}" for i in range(args.libchirp_agents)]
    if not args.libchirp_python:
        lc_names = []
        print("no --libchirp-python: chirp agents only")

    with (
        chirp.Node(synchronous=False, **OPTS) as mnode,
        chirp.Node(synchronous=True, auto_release=False, timeout=5.0, **OPTS) as cnode,
    ):
        monitor = Monitor()
        collector = chirp.Router(cnode, [("127.0.0.1", mnode.port)])
        # Daemon threads: should an agent fail, the program still ends.
        threads = [
            threading.Thread(target=mnode.serve, args=(monitor.handle, 2), daemon=True),
            threading.Thread(target=collector.run, daemon=True),
        ]
        for t in threads:
            t.start()
        to_collector = ("127.0.0.1", cnode.port)

        # libchirp agents first (they take longest to start).  The preload of
        # a sanitizer run, if any, is for this process, not for libchirp's.
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        script = os.path.join(HERE, "monitoring_libchirp_agent.py")
        argv = [args.libchirp_python, script, "--malformed", "127.0.0.1:%d" % cnode.port, str(n)]
        procs = [
            subprocess.Popen([*argv, name], stdout=subprocess.PIPE, text=True, env=env)
            for name in lc_names
        ]
        with ThreadPoolExecutor(max(1, len(names))) as pool:
            for lines in pool.map(lambda name: chirp_agent(name, to_collector, n), names):
                print(*lines, sep="\n")
        agents_ok = True
        for proc in procs:  # each prints its own results
            out, _ = proc.communicate(timeout=120)
            print(out, end="")
            agents_ok = agents_ok and proc.returncode == 0

        # Every send has ended, so the monitor has had every reading.
        everyone = names + lc_names
        ok = monitor.summary(dict.fromkeys(everyone, n)) and agents_ok
        counts = collector.counts
        print(f"collector: forwarded {counts['forwarded']}, rejected {counts['rejected']}")
        ok = ok and counts["forwarded"] == n * len(everyone)
        ok = ok and counts["rejected"] == len(everyone)  # the malformed readings
        collector.stop()
        mnode.stop()
        for t in threads:
            t.join()
        collector.close()
    print("every reading arrived exactly once" if ok else "FAILED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
