"""Addresses: (host, port) tuples resolved to the core's ch_dest_t once
and cached, and the text of the raw addresses messages come from.  A base
of Core (_core.py), apart so that the glue stays one module of its size."""

from __future__ import annotations

import socket
from typing import Any

from ._chirp import ffi, lib
from .errors import ChirpConnectionError

Address = tuple[str, int]
_NOTHING = object()  # no address is this


class AddressBook:
    """What a Core knows of addresses."""

    small: int  # Core's: data + header up to this need no size check

    def __init__(self) -> None:
        self.addr_cache: dict[Address, Any] = {}  # (host, port) -> ch_dest_t cdata
        self.names: dict[bytes, str] = {}  # raw address -> text
        # The last address fast_dest found, and its ch_dest_t, as one
        # object (threads replace it whole): a stream passing the same
        # tuple again is known without hashing it.
        self.last: tuple[Any, Any] = (_NOTHING, None)

    def forget_addresses(self, cache: dict[Address, Any]) -> None:
        """Drop every ch_dest_t known (a forked child's node: they are the
        parent's); cache takes the place of the cache."""
        self.addr_cache = cache
        self.last = (_NOTHING, None)

    def cached(self, addr: Any) -> Any:
        """The ch_dest_t of an address seen before, or None."""
        try:
            return self.addr_cache.get(addr)
        except TypeError:  # unhashable (a list): resolve() says what is wrong
            return None

    def fast_dest(self, addr: Any, data: Any, header: Any) -> Any:
        """The ch_dest_t when the fast path may send: a known address and
        small bytes (nothing to check); else None (the general path)."""
        if type(data) is not bytes or type(header) is not bytes:
            return None
        last = self.last
        if addr is last[0]:
            dest = last[1]
        else:
            try:
                dest = self.addr_cache.get(addr)
            except TypeError:  # unhashable, a list: the general path says why
                return None
            if dest is None:
                return None
            self.last = (addr, dest)
        return dest if len(data) + len(header) <= self.small else None

    def resolve(self, addr: Address) -> Any:
        """The ch_dest_t for a (host, port) tuple (cached)."""
        hit = self.cached(addr)
        if hit is not None:
            return hit
        if not isinstance(addr, tuple) or len(addr) < 2:
            raise TypeError(f"address must be a (host, port) tuple, got {addr!r}")
        host, port = addr[0], addr[1]
        if not isinstance(host, str):
            raise TypeError(f"address host must be a str, got {type(host).__name__}")
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"address port must be an int, got {type(port).__name__}")
        if not 1 <= port <= 65535:
            raise ValueError(f"address port must be in 1..65535, got {port}")
        dest = ffi.new("ch_dest_t *")
        proto = ffi.new("uint8_t *")
        if lib.ch_parse_address(host.encode(), proto, dest.address) != 0:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                raise ChirpConnectionError(f"cannot resolve {host!r}: {e}") from None
            infos.sort(key=lambda i: i[0] != socket.AF_INET)
            ip = str(infos[0][4][0])
            if lib.ch_parse_address(ip.encode(), proto, dest.address) != 0:
                raise ChirpConnectionError(f"cannot use address {ip!r} of {host!r}")
        dest.ip_protocol = proto[0]
        dest.port = port
        if len(self.addr_cache) > 4096:
            self.addr_cache.clear()
        self.addr_cache[(host, port)] = dest
        return dest

    def _address(self, proto: int, raw: bytes) -> str:
        """Text of a raw address (4 or 16 bytes), cached: peers are few."""
        name = self.names.get(raw)
        if name is None:
            name = socket.inet_ntop(socket.AF_INET6 if proto == 6 else socket.AF_INET, raw)
            if len(self.names) < 4096:
                self.names[raw] = name
        return name
