"""Addresses and ports for the tests.

Nodes in the tests listen on port 0 (the OS picks) so that tests never
collide; free_port is for the few tests that need a port number before
anything listens on it.  This module does not import chirp.
"""

from __future__ import annotations

import socket

LOCAL = "127.0.0.1"
LOCAL6 = "::1"
# Put on the loopback device of a test's own network namespace
# (support/netns.py): a peer there is not loopback, so chirp encrypts.
NAMESPACE_ADDRESS = "198.18.0.1"


def free_port(host: str = LOCAL) -> int:
    """A TCP port on host that nothing listens on (right now)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_port_v4_and_v6() -> int:
    """A TCP port free on 0.0.0.0 and on :: right now (for a node that
    binds both, as libchirp does)."""
    for _ in range(50):
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s4.bind(("0.0.0.0", 0))
            port = s4.getsockname()[1]
            try:
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            except OSError:
                return port  # no IPv6 here
            try:
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s6.bind(("::", port))
                return port
            except OSError:
                continue
            finally:
                s6.close()
        finally:
            s4.close()
    raise RuntimeError("no port free on both IPv4 and IPv6 found")
