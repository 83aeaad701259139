"""Node configuration: every option checked (type and value) before anything starts."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, fields
from typing import Any

_MIB = 1024 * 1024


@dataclass
class Config:
    """The options of a :class:`chirp.Node`, mirroring libchirp's config.

    Defaults are libchirp's: port 2998, timeout 5 s, reuse_time 30 s,
    max_msg_size 100 MiB, backlog 100, synchronous mode.
    """

    port: int = 2998
    timeout: float = 5.0
    reuse_time: float = 30.0
    max_slots: int = 16
    synchronous: bool = True
    buffer_size: int = 0
    max_msg_size: int = 100 * _MIB
    bind_v4: str = "0.0.0.0"
    bind_v6: str = "::"
    identity: bytes | None = None
    backlog: int = 100
    disable_encryption: bool = False
    cert_chain_pem: str | None = None
    dh_params_pem: str | None = None
    auto_release: bool = True
    max_inflight: int = 16
    spin_us: int = 50
    inbox_size: int = 256 * 1024

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise TypeError/ValueError naming the first bad option."""
        _int("port", self.port, 0, 65535)
        _num("timeout", self.timeout, 0.0, 86400.0)
        _num("reuse_time", self.reuse_time, 0.0, 86400.0)
        _int("max_slots", self.max_slots, 1, 32)
        _bool("synchronous", self.synchronous)
        if self.buffer_size != 0 or isinstance(self.buffer_size, bool):
            _int("buffer_size", self.buffer_size, 1024, 16 * _MIB, "0 or ")
        _int("max_msg_size", self.max_msg_size, 1, 0xFFFFFFFF)
        _ip("bind_v4", self.bind_v4, 4)
        _ip("bind_v6", self.bind_v6, 6)
        if not self.bind_v4 and not self.bind_v6:
            raise ValueError("bind_v4 and bind_v6 are both empty: nothing to listen on")
        if self.identity is not None:
            if not isinstance(self.identity, (bytes, bytearray)):
                raise TypeError(
                    f"identity must be bytes or None, got {type(self.identity).__name__}"
                )
            if len(self.identity) != 16:
                raise ValueError(f"identity must be 16 bytes, got {len(self.identity)}")
            self.identity = bytes(self.identity)
        _int("backlog", self.backlog, 1, 65535)
        _bool("disable_encryption", self.disable_encryption)
        _path("cert_chain_pem", self.cert_chain_pem)
        _path("dh_params_pem", self.dh_params_pem)
        _bool("auto_release", self.auto_release)
        _int("max_inflight", self.max_inflight, 1, 1024)
        _int("spin_us", self.spin_us, 0, 100_000)
        if self.inbox_size != 0 or isinstance(self.inbox_size, bool):
            _int("inbox_size", self.inbox_size, 4096, 1024 * _MIB, "0 or ")

    @classmethod
    def option_names(cls) -> list[str]:
        """The names of all options."""
        return [f.name for f in fields(cls)]

    def replace(self, **changes: Any) -> Config:
        """A copy with some options changed (checked again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        values.update(changes)
        return Config(**values)


def _int(name: str, value: Any, lo: int, hi: int, prefix: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be {prefix}in {lo}..{hi}, got {value}")


def _num(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not lo < value <= hi:  # also rejects NaN
        raise ValueError(f"{name} must be > {lo:g} and <= {hi:g} seconds, got {value}")


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _ip(name: str, value: Any, version: int) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if value == "":
        return
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{name} is not an IPv{version} address: {value!r}") from None
    if addr.version != version:
        raise ValueError(f"{name} is not an IPv{version} address: {value!r}")


def _path(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str) or None, got {type(value).__name__}")
    if not os.path.isfile(value):
        raise ValueError(f"{name}: no such file: {os.fspath(value)!r}")
