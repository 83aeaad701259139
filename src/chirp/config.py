"""Node configuration, made from the core's option table.

Every option is one entry of CH_CONFIG_MAP in csrc/include/chirp_common.h
(name, kind, default, bounds, doc).  ``Config`` is built from that table
when chirp is imported: its fields, their checks (type and value, before
anything starts), the conversion to the C struct, and docs/options.md
(``python tools/options_doc.py``) all follow it, and the C core checks the
same bounds again in ch_config_check.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass
from typing import Any

from ._chirp import ffi, lib

INT, U32, SECONDS, BOOL = lib.CH_OPT_INT, lib.CH_OPT_U32, lib.CH_OPT_SECONDS, lib.CH_OPT_BOOL
IPV4, IPV6, PATH, ID = lib.CH_OPT_IPV4, lib.CH_OPT_IPV6, lib.CH_OPT_PATH, lib.CH_OPT_ID


@dataclass(frozen=True)
class Option:
    """One entry of the core's option table."""

    name: str
    kind: int
    default: Any
    lo: float
    hi: float
    zero_ok: bool  # 0 is allowed besides lo..hi
    binding: bool  # read by the bridge and bindings, not the loop API
    unset_ok: bool  # None (C: a negative number) means "not set"
    doc: str

    @property
    def pytype(self) -> str:
        """The Python type of the option's value, as text."""
        return {
            INT: "int",
            U32: "int",
            SECONDS: "float | None" if self.unset_ok else "float",
            BOOL: "bool",
            IPV4: "str",
            IPV6: "str",
            PATH: "str | None",
            ID: "bytes | None",
        }[self.kind]


def _default(o: Any) -> Any:
    if o.kind in (INT, U32):
        return int(o.dflt)
    if o.kind == SECONDS:
        return None if o.flags & lib.CH_OPT_UNSET and o.dflt < 0 else float(o.dflt)
    if o.kind == BOOL:
        return bool(o.dflt)
    if o.kind in (IPV4, IPV6):
        return ffi.string(o.dflt_text).decode()
    return None  # PATH, ID


def _read_table() -> tuple[Option, ...]:
    count = ffi.new("int *")
    table = lib.ch_config_options(count)
    return tuple(
        Option(
            name=ffi.string(o.name).decode(),
            kind=o.kind,
            default=_default(o),
            lo=o.lo,
            hi=o.hi,
            zero_ok=bool(o.flags & lib.CH_OPT_ZERO_OK),
            binding=bool(o.flags & lib.CH_OPT_BINDING),
            unset_ok=bool(o.flags & lib.CH_OPT_UNSET),
            doc=ffi.string(o.doc).decode(),
        )
        for o in (table[i] for i in range(count[0]))
    )


OPTIONS: tuple[Option, ...] = _read_table()
_BY_NAME = {o.name: o for o in OPTIONS}


def check(o: Option, value: Any) -> Any:
    """The value, checked against its option (and normalised: a bytearray
    identity becomes bytes); TypeError or ValueError naming the option."""
    name = o.name
    if o.kind in (INT, U32):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not (o.zero_ok and value == 0) and not o.lo <= value <= o.hi:
            prefix = "0 or " if o.zero_ok else ""
            raise ValueError(f"{name} must be {prefix}in {o.lo:.0f}..{o.hi:.0f}, got {value}")
    elif o.kind == SECONDS:
        if value is None and o.unset_ok:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = "a number or None" if o.unset_ok else "a number"
            raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
        if not (o.zero_ok and value == 0) and not o.lo < value <= o.hi:  # refuses NaN
            low = ">=" if o.zero_ok and o.lo == 0 else ">"
            raise ValueError(f"{name} must be {low} {o.lo:g} and <= {o.hi:g} seconds, got {value}")
    elif o.kind == BOOL:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    elif o.kind in (IPV4, IPV6):
        _check_ip(name, value, 4 if o.kind == IPV4 else 6)
    elif o.kind == PATH:
        _check_path(name, value)
    elif o.kind == ID and value is not None:
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{name} must be bytes or None, got {type(value).__name__}")
        if len(value) != lib.CH_ID_SIZE:
            raise ValueError(f"{name} must be {lib.CH_ID_SIZE} bytes, got {len(value)}")
        value = bytes(value)
    return value


def _check_ip(name: str, value: Any, version: int) -> None:
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


def _check_path(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str) or None, got {type(value).__name__}")
    if not os.path.isfile(value):
        raise ValueError(f"{name}: no such file: {os.fspath(value)!r}")


@dataclass(frozen=True)
class Config:
    """The options of a :class:`chirp.Node`, checked when made (TypeError or
    ValueError naming the option); defaults are libchirp's, but for
    max_slots and max_inflight (64, the window of chirp peers' acknowledged
    streams; libchirp's 16).  The fields
    are the core's option table, written out for type checkers and IDEs (a
    test keeps them equal to the table)."""

    port: int = 2998
    timeout: float = 5.0
    reuse_time: float = 30.0
    max_slots: int = 64
    synchronous: bool = True
    buffer_size: int = 0
    max_msg_size: int = 104857600
    bind_v4: str = "0.0.0.0"
    bind_v6: str = "::"
    identity: bytes | None = None
    backlog: int = 100
    disable_encryption: bool = False
    cert_chain_pem: str | None = None
    dh_params_pem: str | None = None
    auto_release: bool = True
    linger: float | None = None
    max_inflight: int = 64
    spin_us: int = 50
    inbox_size: int = 262144
    max_memory: int = 268435456
    max_peer_connections: int = 256

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise TypeError/ValueError naming the first bad option."""
        for o in OPTIONS:
            object.__setattr__(self, o.name, check(o, getattr(self, o.name)))
        if not self.bind_v4 and not self.bind_v6:
            raise ValueError("bind_v4 and bind_v6 are both empty: nothing to listen on")
        if self.max_msg_size > self.max_memory:
            raise ValueError(
                f"max_msg_size ({self.max_msg_size}) is more than max_memory "
                f"({self.max_memory}): such a message could never be received"
            )

    @classmethod
    def option_names(cls) -> list[str]:
        """The names of all options."""
        return [o.name for o in OPTIONS]

    def replace(self, **changes: Any) -> Config:
        """A copy with some options changed (checked again)."""
        unknown = set(changes) - set(_BY_NAME)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)


def _docstring() -> str:
    lines = [(Config.__doc__ or "").rstrip(), ""]
    for o in OPTIONS:
        lines.append(f"{o.name} ({o.pytype}, default {o.default!r}): {o.doc}")
    return "\n".join(lines)


Config.__doc__ = _docstring()


def to_c(cfg: Any) -> tuple[Any, list[Any]]:
    """A ch_config_t for cfg, and the C buffers it points to (keep them
    alive until the node is open)."""
    c = ffi.new("ch_config_t *")
    lib.ch_config_init(c)
    keep: list[Any] = []
    for o in OPTIONS:
        value = getattr(cfg, o.name)
        if o.kind in (IPV4, IPV6, PATH):
            if value is None:
                value = ffi.NULL
            else:
                keep.append(ffi.new("char[]", os.fsencode(value)))
                value = keep[-1]
        elif o.kind == ID:
            if value is None:
                value = ffi.NULL
            else:
                keep.append(ffi.new("uint8_t[]", value))
                value = keep[-1]
        elif o.kind == BOOL:
            value = int(value)
        elif o.kind == SECONDS:
            value = -1.0 if value is None else float(value)
        setattr(c, o.name, value)
    return c, keep


def _format_default(o: Option) -> str:
    if o.default is None:
        return "none"
    if o.kind in (INT, U32) and o.default >= 1024 and o.default % 1024 == 0:
        k = o.default // 1024
        return f"{o.default} ({k // 1024} MiB)" if k % 1024 == 0 else f"{o.default} ({k} KiB)"
    return repr(o.default)


def _format_range(o: Option) -> str:
    if o.kind in (INT, U32):
        return ("0 or " if o.zero_ok else "") + f"{o.lo:.0f}..{o.hi:.0f}"
    if o.kind == SECONDS:
        low = ">=" if o.zero_ok and o.lo == 0 else ">"
        return f"{low} {o.lo:g}, <= {o.hi:g}" + (", or None" if o.unset_ok else "")
    return {BOOL: "True, False", IPV4: "IPv4 address or ''", IPV6: "IPv6 address or ''",
            PATH: "file path", ID: "16 bytes"}[o.kind]  # fmt: skip


def options_markdown() -> str:
    """docs/options.md, written from the table."""
    rows = [
        "# Options",
        "",
        "Written from the core's option table (`CH_CONFIG_MAP` in",
        "`csrc/include/chirp_common.h`) by `python tools/options_doc.py`; a",
        "test checks that this file is current.  Every option is a keyword of",
        "`chirp.Node` and a field of `chirp.Config` (and of the C `ch_config_t`);",
        "a bad value raises `TypeError` or `ValueError` naming the option before",
        "anything starts.",
        "",
        "| option | type | default | allowed | what it does |",
        "|---|---|---|---|---|",
    ]
    for o in OPTIONS:
        kind = o.pytype.replace(" | ", " or ")
        cells = [f"`{o.name}`", kind, _format_default(o), _format_range(o), o.doc]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
