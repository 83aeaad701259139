"""Simulated hosts: network namespaces joined by veth pairs to a bridge in
a switch namespace of their own, each host with its own address
(10.77.0.N/24), so connections between them are TLS, as between real
machines.  Faults the ways this kernel allows: packet loss with an
nftables ``numgen random`` drop rule, partitions with drop rules added
and removed, bandwidth limits with the ``tbf`` qdisc, and cutting a
host's link.  Needs root, ``ip`` (iproute2), ``nft`` (nftables), ``tc``.

Programs run in a host with ``ip netns exec`` (support.child.Child).
Names carry this process's id, so runs in parallel do not meet.  This
module does not import chirp.
"""

from __future__ import annotations

import os
import shutil
import subprocess

SUBNET = "10.77.0"


class HostsError(RuntimeError):
    pass


def _ip(*args: str) -> None:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise HostsError(f"ip {' '.join(args)}: {p.stderr.strip()}")


def missing_tools() -> list[str]:
    return [t for t in ("ip", "nft", "tc") if shutil.which(t) is None]


class Hosts:
    """n hosts: host k (1-based) is namespace ``names[k]`` with address
    ``addr(k)`` on its link ``link(k)``.  Use as a context manager: the
    namespaces go with it."""

    def __init__(self, n: int) -> None:
        tag = f"c{os.getpid() % 100000}"
        self.n = n
        self.switch = f"{tag}sw"
        self.names = {k: f"{tag}h{k}" for k in range(1, n + 1)}
        self._made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for k, ns in self.names.items():
            _ip("netns", "add", ns)
            self._made.append(ns)
            host_end, switch_end = self.link(k), f"{self.switch}p{k}"
            _ip("link", "add", host_end, "type", "veth", "peer", "name", switch_end)
            _ip("link", "set", host_end, "netns", ns)
            _ip("link", "set", switch_end, "netns", self.switch)
            _ip("-n", self.switch, "link", "set", switch_end, "master", "br0")
            _ip("-n", self.switch, "link", "set", switch_end, "up")
            _ip("-n", ns, "addr", "add", f"{self.addr(k)}/24", "dev", host_end)
            _ip("-n", ns, "link", "set", host_end, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            self._sh(k, "nft", "add table inet chirpsim")
            self._sh(k, "nft", "add chain inet chirpsim input "
                     "{ type filter hook input priority 0 ; }")  # fmt: skip

    def addr(self, k: int) -> str:
        return f"{SUBNET}.{k}"

    def link(self, k: int) -> str:
        return f"{self.names[k]}v"

    def argv(self, k: int, argv: list) -> list[str]:
        """argv run inside host k."""
        return ["ip", "netns", "exec", self.names[k], *[str(a) for a in argv]]

    def _sh(self, k: int, tool: str, args: str) -> None:
        cmd = ["ip", "netns", "exec", self.names[k], tool, *args.split()]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise HostsError(f"{' '.join(cmd)}: {p.stderr.strip()}")

    # -- faults -----------------------------------------------------------

    def loss(self, k: int, percent: int) -> None:
        """Host k drops percent % of the packets it receives, at random."""
        self._sh(k, "nft", f"add rule inet chirpsim input numgen random mod 100 < {percent} drop")

    def partition(self, a: int, b: int) -> None:
        """Nothing passes between hosts a and b (either way)."""
        self._sh(a, "nft", f"add rule inet chirpsim input ip saddr {self.addr(b)} drop")
        self._sh(b, "nft", f"add rule inet chirpsim input ip saddr {self.addr(a)} drop")

    def heal(self, *hosts: int) -> None:
        """Remove every drop rule of these hosts (loss and partitions)."""
        for k in hosts:
            self._sh(k, "nft", "flush chain inet chirpsim input")

    def bandwidth(self, k: int, rate: str) -> None:
        """What host k sends goes at most at rate (tc's syntax: 20mbit)."""
        self._sh(k, "tc", f"qdisc replace dev {self.link(k)} root tbf rate {rate} "
                 "burst 32kbit latency 100ms")  # fmt: skip

    def cut(self, k: int) -> None:
        """Host k's link goes down: its packets go nowhere, nothing tells."""
        _ip("-n", self.names[k], "link", "set", self.link(k), "down")

    def restore(self, k: int) -> None:
        _ip("-n", self.names[k], "link", "set", self.link(k), "up")

    def close(self) -> None:
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self._made.clear()

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
