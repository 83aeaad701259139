"""chirp's exceptions: one base class, and standard bases where they fit."""

from __future__ import annotations

from ._chirp import ffi, lib


class ChirpError(Exception):
    """Base class of every error chirp raises; ``code`` is the core's error name."""

    code: str = "CH_EUNKNOWN"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ChirpTimeoutError(ChirpError, TimeoutError):
    """A send, connect, handshake, request or recv did not finish in time."""

    code = "CH_ETIMEDOUT"


class ChirpConnectionError(ChirpError, ConnectionError):
    """A connection could not be set up or was lost."""

    code = "CH_ECONN"


class TLSError(ChirpConnectionError):
    """A TLS problem: handshake, certificate or key."""

    code = "CH_ETLS"


class ProtocolError(ChirpError):
    """A peer violated the wire protocol."""

    code = "CH_EPROTO"


class ClosedError(ChirpError):
    """The node is closed (or closing) and cannot be used."""

    code = "CH_ECLOSED"


class ChirpMemoryError(ChirpError, MemoryError):
    """The core could not allocate memory for this operation."""

    code = "CH_ENOMEM"


class MessageSizeError(ChirpError, ValueError):
    """A message is larger than ``max_msg_size`` (or its header than 65535 bytes)."""

    code = "CH_EMSGSIZE"


class AddressError(ChirpError, OSError):
    """An address problem: cannot bind or listen, or an unusable peer address."""

    code = "CH_EADDR"


class RejectedError(ChirpError):
    """The receiver rejected the message (``Message.reject``, or a handler
    of ``serve`` that raised): ``reason`` is its text, ``address`` the
    receiver ("host:port")."""

    code = "CH_EREJECTED"
    _SEP = " rejected the message: "

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, code)
        address, sep, reason = message.partition(self._SEP)
        self.address: str | None = address if sep else None
        self.reason: str = reason if sep else message


_BY_CODE: dict[str, type[ChirpError]] = {
    cls.code: cls
    for cls in (
        ChirpTimeoutError,
        ChirpConnectionError,
        TLSError,
        ProtocolError,
        ClosedError,
        ChirpMemoryError,
        MessageSizeError,
        AddressError,
        RejectedError,
    )
}


def error_for(code: str, message: str) -> ChirpError:
    """Build the exception that matches a core error code name."""
    cls = _BY_CODE.get(code, ChirpError)
    return cls(message, code)


def errname(rc: int) -> str:
    """The core's name of an error code ("CH_ETIMEDOUT")."""
    name: str = ffi.string(lib.ch_errname(rc)).decode()
    return name


def error_from(rc: int, detail: str = "") -> ChirpError:
    """The exception for a core error code; its message is the core's
    detail, or the code's meaning."""
    return error_for(errname(rc), detail or ffi.string(lib.ch_strerror(rc)).decode())
